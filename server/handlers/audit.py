"""audit: the append-only workspace audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import as_datetime
from server.runtime.context import Request
from server.storage import repositories as repo
from server.storage.models import AuditEvent


def _key(row: AuditEvent) -> tuple[datetime, str]:
    return row.created_at, row.id


def _filters(req: Request) -> dict[str, Any]:
    query = req.query
    actions = query.get("actions")
    start = query.get("from")
    end = query.get("to")
    return {
        "action": str(query["action"]) if query.get("action") is not None else None,
        "actions": [str(a) for a in actions] if actions is not None else None,
        "actor_id": str(query["actor_id"]) if query.get("actor_id") is not None else None,
        "target_type": (
            str(query["target_type"]) if query.get("target_type") is not None else None
        ),
        "target_id": str(query["target_id"]) if query.get("target_id") is not None else None,
        "from_": as_datetime(start, "query.from") if start is not None else None,
        "to": as_datetime(end, "query.to") if end is not None else None,
    }


def list_audit_log(req: Request) -> dict[str, Any]:
    """The workspace's events; filters combine with AND, ``from`` inclusive, ``to`` exclusive."""
    page = req.page
    assert page is not None
    workspace_id = str(req.path["workspace_id"])
    filters = _filters(req)
    rows = repo.list_audit_events(
        req.db,
        workspace_id,
        **filters,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
    )
    total = repo.count_audit_events(req.db, workspace_id, **filters) if page.include_total else None
    return page.respond(rows, ser.audit_event, key=_key, total=total)
