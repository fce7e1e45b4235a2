"""Row access by equality: what most resources need, so a new resource needs no storage
module of its own, only its ORM model.

Filters are keyword arguments naming columns (``workspace_id=…, status=…``); a ``None`` value
means "any" (a list filter the caller did not give). Writes flush, so a constraint violation
surfaces at the call; nothing here commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from server.storage.common import Cursor, Order, apply_keyset

Row = TypeVar("Row")

__all__ = ["add", "count_by", "find", "get", "list_by", "touch"]


def _where(model: Any, equal: dict[str, Any]) -> list[ColumnElement[bool]]:
    return [getattr(model, name) == value for name, value in equal.items() if value is not None]


def add(session: Session, row: Row) -> Row:
    """Insert ``row`` (flushed)."""
    session.add(row)
    session.flush()
    return row


def get(session: Session, model: type[Row], row_id: str, **scope: Any) -> Row | None:
    """The row with this id, if it also matches ``scope`` (its workspace, its user): a row of
    another owner is ``None``, exactly like a missing one."""
    stmt = select(model).where(_where(model, {"id": row_id})[0], *_where(model, scope))
    return session.scalars(stmt).first()


def find(session: Session, model: type[Row], **equal: Any) -> Row | None:
    """The first row matching ``equal`` (a unique key such as a secret's hash)."""
    return session.scalars(select(model).where(*_where(model, equal))).first()


def list_by(
    session: Session,
    model: type[Row],
    *,
    after: Cursor | None,
    order: Order,
    limit: int,
    **equal: Any,
) -> Sequence[Row]:
    """Rows matching ``equal``, keyset-paginated on ``(created_at, id)``: up to ``limit + 1``."""
    keyed: Any = model
    stmt = select(model).where(*_where(model, equal))
    return session.scalars(
        apply_keyset(stmt, keyed.created_at, keyed.id, after=after, order=order, limit=limit)
    ).all()


def count_by(session: Session, model: type[Any], **equal: Any) -> int:
    """How many rows match ``equal`` (a list's ``total``)."""
    stmt = select(func.count()).select_from(model).where(*_where(model, equal))
    return session.scalar(stmt) or 0


def touch(
    session: Session, model: type[Any], row_id: str, *, now: datetime, every: timedelta
) -> None:
    """Stamp ``last_used_at``, at most once per ``every`` (a conditional update, so concurrent
    stamps of one credential write once and never wait on each other's reads)."""
    keyed: Any = model
    session.execute(
        update(model)
        .where(
            keyed.id == row_id,
            or_(keyed.last_used_at.is_(None), keyed.last_used_at <= now - every),
        )
        .values(last_used_at=now)
    )
