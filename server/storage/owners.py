"""Owner lookups: the workspace that owns a stored item, by the item's id.

The runtime (``server.runtime.ownership``) asks them for the workspace of the item a flat path
names (``/api-keys/{key_id}``), keyed by the spec's name of the resource (the schema an id's
``x-gantry-resource`` names). Every stored resource that a workspace owns and that has an id
of its own has one here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from sqlalchemy import select
from sqlalchemy.orm import Session

from server.storage.definitions import agent_workspace, workflow_workspace
from server.storage.gateway_models import GatewayBackend, GatewayRoute, Provider
from server.storage.models import ApiKey
from server.storage.prompts import prompt_workspace
from server.storage.runs import artifact_workspace, run_workspace

__all__ = [
    "OWNER_LOOKUPS",
    "api_key_workspace",
    "backend_workspace",
    "provider_workspace",
    "route_workspace",
]


def api_key_workspace(db: Session, key_id: str) -> str | None:
    """The workspace of the API key ``key_id``, or None when there is none."""
    return db.execute(select(ApiKey.workspace_id).where(ApiKey.id == key_id)).scalar_one_or_none()


def provider_workspace(db: Session, provider_id: str) -> str | None:
    """The workspace of the provider ``provider_id``, or None when there is none."""
    stmt = select(Provider.workspace_id).where(Provider.id == provider_id)
    return db.execute(stmt).scalar_one_or_none()


def backend_workspace(db: Session, backend_id: str) -> str | None:
    """The workspace of the gateway backend ``backend_id``, or None when there is none."""
    stmt = select(GatewayBackend.workspace_id).where(GatewayBackend.id == backend_id)
    return db.execute(stmt).scalar_one_or_none()


def route_workspace(db: Session, route_id: str) -> str | None:
    """The workspace of the gateway route ``route_id``, or None when there is none."""
    stmt = select(GatewayRoute.workspace_id).where(GatewayRoute.id == route_id)
    return db.execute(stmt).scalar_one_or_none()


OWNER_LOOKUPS: Mapping[str, Callable[[Session, str], str | None]] = MappingProxyType(
    {
        "ApiKey": api_key_workspace,
        "Provider": provider_workspace,
        "Backend": backend_workspace,
        "Route": route_workspace,
        "Prompt": prompt_workspace,
        "Run": run_workspace,
        "Artifact": artifact_workspace,
        "Agent": agent_workspace,
        "Workflow": workflow_workspace,
    }
)
