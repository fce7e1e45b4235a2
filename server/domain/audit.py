"""The workspace audit log, read back: every filter given narrows it (AND)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import optional_datetime, optional_text, unique
from server.storage import audit as rows
from server.storage.models import AuditEvent


def list_events(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    action: Any = None,
    actions: Any = None,
    actor_id: Any = None,
    target_type: Any = None,
    target_id: Any = None,
    start: Any = None,
    end: Any = None,
    window: Window,
) -> tuple[Sequence[AuditEvent], int | None]:
    """The workspace's events in ``window`` (and their count if asked): with exactly
    ``action``, with any of ``actions``, by ``actor_id``, on targets of ``target_type`` or on
    ``target_id``, created at or after ``start`` and before ``end``."""
    filters: dict[str, Any] = {
        "action": optional_text(action),
        "actions": unique(actions) if actions is not None else None,
        "actor_id": optional_text(actor_id),
        "target_type": optional_text(target_type),
        "target_id": optional_text(target_id),
        "from_": optional_datetime(start, "query.from"),
        "to": optional_datetime(end, "query.to"),
    }
    found = rows.list_audit_events(
        uow.db,
        workspace_id,
        **filters,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    total = (
        rows.count_audit_events(uow.db, workspace_id, **filters) if window.include_total else None
    )
    return found, total
