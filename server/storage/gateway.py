"""Queries of the gateway's configuration (providers, backends, routes) beyond ``rows``.

Locks, for the rules that span rows (a provider a backend uses, a backend a route uses), in
the order of ``server.storage.gateway_models``: the workspace first (the dispatcher's
admission), then providers, then backends, each set in id order. A row about to be deleted is
locked for update; a row about to be referenced is locked for key share, which a deletion
waits for (and which waits for a deletion, then finds the row gone). SQLite serialises writers
on its database lock, where these clauses render as nothing.

A workspace's configuration version (``GatewayConfigVersion``) is bumped last in every change,
after the rows it changes: under the workspace's lock, which every writer of the workspace
holds first, bumping it never waits for another change of the same workspace.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    Select,
    String,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal,
    or_,
    select,
    tuple_,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from server.storage.gateway_models import (
    GatewayBackend,
    GatewayConfigVersion,
    GatewayRoute,
    GatewayRouteBackend,
    Provider,
)
from server.storage.gateway_traffic import GatewayRequest as Call
from server.storage.types import UTCDateTime

__all__ = [
    "RouteKey",
    "Traffic",
    "any_ciphertext",
    "backend_in_use",
    "backend_traffic",
    "backends_for_update",
    "backends_of",
    "bump_config_version",
    "config_version",
    "delete_links",
    "delete_row",
    "list_routes",
    "lock_for_delete",
    "provider_in_use",
    "providers_by_id",
    "routes_using",
]

Row = TypeVar("Row", Provider, GatewayBackend, GatewayRoute)
# A route's position in the gateway's order: (priority, created_at, id).
RouteKey = tuple[int, datetime, str]


def lock_for_delete(
    session: Session, model: type[Row], row_id: str, workspace_id: str
) -> Row | None:
    """The row, locked for update (a deletion's lock), if it is the workspace's."""
    stmt: Select[tuple[Row]] = (
        select(model)
        .where(model.id == row_id, model.workspace_id == workspace_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalars(stmt).first()


def provider_in_use(session: Session, provider_id: str) -> bool:
    """Whether a backend uses the provider."""
    return bool(session.scalar(select(exists().where(GatewayBackend.provider_id == provider_id))))


def backend_in_use(session: Session, backend_id: str) -> bool:
    """Whether a route uses the backend."""
    return bool(
        session.scalar(select(exists().where(GatewayRouteBackend.backend_id == backend_id)))
    )


def routes_using(session: Session, backend_id: str) -> list[str]:
    """The names of the routes that use the backend (for the refusal's detail)."""
    stmt = (
        select(GatewayRoute.name)
        .join(GatewayRouteBackend, GatewayRouteBackend.route_id == GatewayRoute.id)
        .where(GatewayRouteBackend.backend_id == backend_id)
        .order_by(GatewayRoute.name)
    )
    return list(session.scalars(stmt).all())


def providers_by_id(
    session: Session, workspace_id: str, provider_ids: Iterable[str], *, lock: bool = False
) -> dict[str, Provider]:
    """The workspace's providers with these ids; with ``lock``, locked for key share (a
    backend about to reference one), in id order."""
    ids = sorted(set(provider_ids))
    if not ids:
        return {}
    stmt = (
        select(Provider)
        .where(Provider.workspace_id == workspace_id, Provider.id.in_(ids))
        .order_by(Provider.id)
    )
    if lock:
        stmt = stmt.with_for_update(read=True, key_share=True)
    return {row.id: row for row in session.scalars(stmt).all()}


def backends_for_update(
    session: Session, workspace_id: str, backend_ids: Iterable[str]
) -> dict[str, GatewayBackend]:
    """The workspace's backends with these ids, locked for key share (a route about to
    reference them), in id order."""
    ids = sorted(set(backend_ids))
    if not ids:
        return {}
    stmt = (
        select(GatewayBackend)
        .where(GatewayBackend.workspace_id == workspace_id, GatewayBackend.id.in_(ids))
        .order_by(GatewayBackend.id)
        .with_for_update(read=True, key_share=True)
    )
    return {row.id: row for row in session.scalars(stmt).all()}


def backends_of(session: Session, backend_ids: Iterable[str]) -> dict[str, GatewayBackend]:
    """Backends by id (no lock: a read)."""
    ids = sorted(set(backend_ids))
    if not ids:
        return {}
    stmt = select(GatewayBackend).where(GatewayBackend.id.in_(ids))
    return {row.id: row for row in session.scalars(stmt).all()}


def delete_row(session: Session, row: Any) -> None:
    """Delete ``row`` (flushed, so a reference that appeared meanwhile fails here)."""
    session.delete(row)
    session.flush()


def delete_links(session: Session, route_id: str) -> None:
    """Remove every backend of a route (before its list is written anew)."""
    session.execute(delete(GatewayRouteBackend).where(GatewayRouteBackend.route_id == route_id))


def list_routes(
    session: Session,
    workspace_id: str,
    *,
    after: RouteKey | None,
    limit: int | None,
    enabled: bool | None = None,
) -> Sequence[GatewayRoute]:
    """The workspace's routes in the gateway's order (priority, then oldest first), after
    ``after``; up to ``limit + 1`` rows (every row without a limit)."""
    stmt = select(GatewayRoute).where(GatewayRoute.workspace_id == workspace_id)
    if enabled is not None:
        stmt = stmt.where(GatewayRoute.enabled == enabled)
    if after is not None:
        priority, created_at, route_id = after
        key = tuple_(GatewayRoute.created_at, GatewayRoute.id)
        bound = tuple_(literal(created_at, UTCDateTime()), literal(route_id, String()))
        stmt = stmt.where(
            or_(
                GatewayRoute.priority > priority,
                (GatewayRoute.priority == priority) & (key > bound),
            )
        )
    stmt = stmt.order_by(GatewayRoute.priority, GatewayRoute.created_at, GatewayRoute.id)
    if limit is not None:
        stmt = stmt.limit(limit + 1)
    return session.scalars(stmt).all()


# Read on every gateway call: built once (building a statement costs as much as running it).
_CONFIG_VERSION = select(GatewayConfigVersion.version).where(
    GatewayConfigVersion.workspace_id == bindparam("workspace_id")
)


def config_version(session: Session, workspace_id: str) -> int:
    """The workspace's gateway configuration version (0 before its first change)."""
    return int(session.scalar(_CONFIG_VERSION, {"workspace_id": workspace_id}) or 0)


def bump_config_version(session: Session, workspace_id: str) -> None:
    """Count one more change of the workspace's gateway configuration, in the session's
    transaction (one upsert: the first change writes version 1)."""
    upsert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    stmt = upsert(GatewayConfigVersion).values(workspace_id=workspace_id, version=1)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[GatewayConfigVersion.workspace_id],
            set_={"version": GatewayConfigVersion.version + 1},
        )
    )


def any_ciphertext(session: Session) -> str | None:
    """One stored provider secret, to check at start-up that the key opens them."""
    stmt = (
        select(Provider.api_key_ciphertext, Provider.extra_headers_ciphertext)
        .where(
            or_(
                Provider.api_key_ciphertext.is_not(None),
                Provider.extra_headers_ciphertext.is_not(None),
            )
        )
        .limit(1)
    )
    found = session.execute(stmt).first()
    if found is None:
        return None
    api_key, headers = found
    return str(api_key if api_key is not None else headers)


@dataclass(frozen=True, slots=True)
class Traffic:
    """A backend's calls in a window of the request log."""

    requests: int
    errors: int
    p50_ms: int | None
    tokens: int


def backend_traffic(session: Session, backend_id: str, *, since: datetime) -> Traffic:
    """The backend's calls since ``since``: how many, how many failed (an error, or a status
    of 400 or above), their median latency (the lower middle one of an even count) and the
    tokens they used. Two indexed reads, on SQLite and PostgreSQL alike."""
    window = (Call.backend_id == backend_id, Call.created_at >= since)
    failed = or_(Call.error.is_not(None), Call.status_code >= 400)
    requests, errors, tokens = session.execute(
        select(
            func.count(),
            func.coalesce(func.sum(case((failed, 1), else_=0)), 0),
            func.coalesce(func.sum(Call.prompt_tokens + Call.completion_tokens), 0),
        ).where(*window)
    ).one()
    p50: int | None = None
    if requests:
        p50 = session.scalar(
            select(Call.latency_ms)
            .where(*window)
            .order_by(Call.latency_ms)
            .offset((int(requests) - 1) // 2)
            .limit(1)
        )
    return Traffic(int(requests), int(errors), p50, int(tokens))
