"""Users (instance-level accounts)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, func, or_, select
from sqlalchemy.orm import Session, aliased

from server.security import new_id
from server.storage.common import UNSET, Cursor, Order, Unset, apply_keyset
from server.storage.models import Membership, User
from server.storage.types import utcnow

__all__ = [
    "count_superadmins",
    "count_users",
    "create_user",
    "delete_user",
    "get_user",
    "get_user_by_email",
    "list_users",
    "normalize_email",
    "sole_owner_workspace_ids",
    "update_user",
]


def normalize_email(email: str) -> str:
    """Emails are stored and compared trimmed and lower-cased."""
    return email.strip().lower()


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def get_user_by_email(session: Session, email: str) -> User | None:
    """Case-insensitive (emails are stored lower-cased)."""
    return session.scalars(select(User).where(User.email == normalize_email(email))).first()


def create_user(
    session: Session,
    *,
    email: str,
    name: str,
    password_hash: str | None = None,
    is_superadmin: bool = False,
    status: str = "active",
    now: datetime | None = None,
) -> User:
    """Insert a user; a duplicate email raises ``IntegrityError`` here (the insert is flushed)."""
    now = now or utcnow()
    user = User(
        id=new_id("usr_"),
        email=normalize_email(email),
        name=name,
        password_hash=password_hash,
        is_superadmin=is_superadmin,
        status=status,
        created_at=now,
        updated_at=now,
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    user: User,
    *,
    email: str | Unset = UNSET,
    name: str | Unset = UNSET,
    password_hash: str | Unset | None = UNSET,
    is_superadmin: bool | Unset = UNSET,
    status: str | Unset = UNSET,
    now: datetime | None = None,
) -> User:
    """Change the given fields (``UNSET`` leaves one alone) and bump ``updated_at``.

    Flushed at once, so a duplicate email raises ``IntegrityError`` here.
    """
    if not isinstance(email, Unset):
        user.email = normalize_email(email)
    if not isinstance(name, Unset):
        user.name = name
    if not isinstance(password_hash, Unset):
        user.password_hash = password_hash
    if not isinstance(is_superadmin, Unset):
        user.is_superadmin = is_superadmin
    if not isinstance(status, Unset):
        user.status = status
    user.updated_at = now or utcnow()
    session.flush()
    return user


def delete_user(session: Session, user_id: str) -> bool:
    """Hard-delete a user; their sessions, tokens and memberships go with them (cascade).

    Check ``sole_owner_workspace_ids`` first to honour the last-owner rule.
    """
    result = session.execute(delete(User).where(User.id == user_id))
    return bool(getattr(result, "rowcount", 0))


def sole_owner_workspace_ids(session: Session, user_id: str) -> list[str]:
    """Workspaces in which ``user_id`` is the only owner (deleting the user would orphan them)."""
    other = aliased(Membership)
    owners = (
        select(func.count())
        .select_from(other)
        .where(other.workspace_id == Membership.workspace_id, other.role == "owner")
        .scalar_subquery()
    )
    stmt = (
        select(Membership.workspace_id)
        .where(Membership.user_id == user_id, Membership.role == "owner", owners == 1)
        .order_by(Membership.workspace_id)
    )
    return list(session.scalars(stmt))


def count_superadmins(session: Session, *, active_only: bool = True) -> int:
    stmt = select(func.count()).select_from(User).where(User.is_superadmin.is_(True))
    if active_only:
        stmt = stmt.where(User.status == "active")
    return session.scalar(stmt) or 0


def _user_filters(q: str | None, status: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = []
    if q:
        needle = q.strip().lower()
        filters.append(
            or_(
                User.email.contains(needle, autoescape=True),
                func.lower(User.name).contains(needle, autoescape=True),
            )
        )
    if status is not None:
        filters.append(User.status == status)
    return filters


def list_users(
    session: Session,
    *,
    q: str | None = None,
    status: str | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[User]:
    """All users, ``q`` matching a case-insensitive substring of email or name (LIKE wildcards
    in ``q`` are literal), optionally only those with ``status``.

    Keyset on ``(created_at, id)``; returns up to ``limit + 1`` rows.
    """
    stmt: Select[tuple[User]] = select(User).where(*_user_filters(q, status))
    return session.scalars(
        apply_keyset(stmt, User.created_at, User.id, after=after, order=order, limit=limit)
    ).all()


def count_users(session: Session, *, q: str | None = None, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(User).where(*_user_filters(q, status))
    return session.scalar(stmt) or 0
