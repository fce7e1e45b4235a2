"""The audit log: append-only events, listed newest first with typed filters."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.orm import Session

from server.security import new_id
from server.storage.common import Cursor, Order, apply_keyset
from server.storage.models import AuditEvent
from server.storage.types import utcnow

__all__ = ["append_audit_event", "count_audit_events", "list_audit_events"]


def append_audit_event(
    session: Session,
    *,
    workspace_id: str | None,
    actor_type: str,
    actor_id: str | None,
    actor_label: str | None,
    action: str,
    target_type: str | None,
    target_id: str | None,
    summary: str = "",
    metadata: Mapping[str, Any] | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
    request_id: str | None = None,
    now: datetime | None = None,
) -> AuditEvent:
    """Append one event (``workspace_id=None`` for instance-level actions such as
    ``user.created``). It is written in the caller's transaction, so it is rolled back together
    with the change it describes."""
    event = AuditEvent(
        id=new_id("aud_"),
        workspace_id=workspace_id,
        actor_type=actor_type,
        actor_id=actor_id,
        actor_label=actor_label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=summary,
        metadata_=dict(metadata or {}),
        ip=ip,
        user_agent=user_agent,
        request_id=request_id,
        created_at=now or utcnow(),
    )
    session.add(event)
    session.flush()
    return event


def _audit_filters(
    workspace_id: str | None,
    *,
    action: str | None,
    actions: Sequence[str] | None,
    actor_id: str | None,
    target_type: str | None,
    target_id: str | None,
    from_: datetime | None,
    to: datetime | None,
) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [
        AuditEvent.workspace_id.is_(None)
        if workspace_id is None
        else AuditEvent.workspace_id == workspace_id
    ]
    if action is not None:
        filters.append(AuditEvent.action == action)
    if actions is not None:
        filters.append(AuditEvent.action.in_(list(actions)))
    if actor_id is not None:
        filters.append(AuditEvent.actor_id == actor_id)
    if target_type is not None:
        filters.append(AuditEvent.target_type == target_type)
    if target_id is not None:
        filters.append(AuditEvent.target_id == target_id)
    if from_ is not None:
        filters.append(AuditEvent.created_at >= from_)
    if to is not None:
        filters.append(AuditEvent.created_at < to)
    return filters


def list_audit_events(
    session: Session,
    workspace_id: str | None,
    *,
    action: str | None = None,
    actions: Sequence[str] | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[AuditEvent]:
    """Events of one workspace (``None``: instance-level events), every given filter ANDed;
    ``from_`` is inclusive and ``to`` exclusive on ``created_at``; ``actions`` is "any of".
    Keyset on ``(created_at, id)``; up to ``limit + 1`` rows."""
    stmt: Select[tuple[AuditEvent]] = select(AuditEvent).where(
        *_audit_filters(
            workspace_id,
            action=action,
            actions=actions,
            actor_id=actor_id,
            target_type=target_type,
            target_id=target_id,
            from_=from_,
            to=to,
        )
    )
    stmt = apply_keyset(
        stmt, AuditEvent.created_at, AuditEvent.id, after=after, order=order, limit=limit
    )
    return session.scalars(stmt).all()


def count_audit_events(
    session: Session,
    workspace_id: str | None,
    *,
    action: str | None = None,
    actions: Sequence[str] | None = None,
    actor_id: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    from_: datetime | None = None,
    to: datetime | None = None,
) -> int:
    stmt = (
        select(func.count())
        .select_from(AuditEvent)
        .where(
            *_audit_filters(
                workspace_id,
                action=action,
                actions=actions,
                actor_id=actor_id,
                target_type=target_type,
                target_id=target_id,
                from_=from_,
                to=to,
            )
        )
    )
    return session.scalar(stmt) or 0
