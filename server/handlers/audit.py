"""audit: the append-only workspace audit log."""

from __future__ import annotations

from typing import Any

from server.domain import audit
from server.runtime.context import Request


def list_audit_log(req: Request) -> dict[str, Any]:
    """The workspace's events; filters combine with AND, ``from`` inclusive, ``to`` exclusive."""
    assert req.page is not None
    query = req.query
    found, total = audit.list_events(
        req.work,
        req.path["workspace_id"],
        action=query.get("action"),
        actions=query.get("actions"),
        actor_id=query.get("actor_id"),
        target_type=query.get("target_type"),
        target_id=query.get("target_id"),
        start=query.get("from"),
        end=query.get("to"),
        window=req.page,
    )
    return req.page.respond(found, total=total)
