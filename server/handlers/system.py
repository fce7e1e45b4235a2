"""system: health, build information, instance status, the OpenAPI document and the docs page."""

from __future__ import annotations

from typing import Any

from server.docs import docs_page
from server.domain import system
from server.runtime.context import Reply, Request
from server.runtime.errors import NotFound

SPEC_URL = "/api/v1/openapi.json"


def get_health(req: Request) -> system.Health:
    """``{status: ok|degraded, time}``."""
    return system.health(req.work, req.state.database)


def get_version(req: Request) -> system.Build:
    """The release version, the commit and build time when known, and the platform."""
    return system.build()


def get_status(req: Request) -> system.InstanceStatus:
    """Uptime, resource counts visible to the caller, and feature flags."""
    assert req.principal is not None
    state = req.state
    return system.instance_status(
        req.work,
        state.database,
        caller=req.principal,
        config=state.config,
        started=state.started_at,
    )


def _require_docs(req: Request) -> None:
    if not req.state.config.openapi_enabled:
        raise NotFound("The API documentation is disabled.")


def get_openapi_document(req: Request) -> dict[str, Any]:
    """The spec the server was generated from; 404 when disabled."""
    _require_docs(req)
    return req.state.spec_document


def get_docs(req: Request) -> Reply:
    """The interactive docs page; 404 when disabled."""
    _require_docs(req)
    info = req.state.spec_document.get("info") or {}
    title = f"{info.get('title') or 'Gantry API'} docs"
    return Reply(docs_page(title, SPEC_URL), media_type="text/html")
