"""The audit trail: every change records one append-only event, in the change's transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from server.runtime.context import Request
from server.security import new_id
from server.storage.models import AuditEvent


def record(
    req: Request,
    action: str,
    *,
    target_type: str,
    target_id: str,
    summary: str,
    workspace_id: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append ``action`` (dotted ``resource.verb``) by the request's caller to the audit log."""
    principal = req.principal
    event = AuditEvent(
        id=new_id("aud_"),
        workspace_id=workspace_id,
        actor_type=principal.actor_type if principal else "system",
        actor_id=principal.actor_id if principal else None,
        actor_label=principal.label if principal else "system",
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary,
        metadata_=metadata or {},
        ip=req.client_ip,
        user_agent=(req.user_agent or "")[:512] or None,
        request_id=req.request_id,
        created_at=datetime.now(UTC),
    )
    req.db.add(event)
    return event
