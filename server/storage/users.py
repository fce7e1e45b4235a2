"""Users (instance-level accounts), with the rules that span them: the instance keeps an active
superadmin, and a deleted user leaves no workspace without an owner.

On PostgreSQL each rule locks the rows it counts before counting, and every lock is taken in one
order: the active superadmins, then credentials, then a user, then workspaces by id. A request's
own credential row is locked when it stamps its last use: an administrator's write does that
after taking the superadmins' lock (the dispatcher), a workspace's write before taking the
workspace's, and a deletion locks the deleted user's credentials before their workspaces. On
SQLite a writer's transaction holds the database write lock from its start
(``Database.write_sessionmaker``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, delete, false, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from server.security import new_id
from server.storage.common import (
    UNSET,
    Cursor,
    LastOwnerError,
    Order,
    StorageError,
    Unset,
    apply_keyset,
)
from server.storage.models import Membership, PersonalAccessToken, User, UserSession
from server.storage.types import utcnow
from server.storage.workspaces import lock_workspaces

__all__ = [
    "LastSuperadminError",
    "SoleOwnerError",
    "count_superadmins",
    "count_users",
    "create_user",
    "delete_user",
    "get_user",
    "get_user_by_email",
    "keep_an_active_superadmin",
    "list_users",
    "lock_active_superadmins",
    "normalize_email",
    "remove_user",
    "sole_owner_workspace_ids",
    "update_user",
]


class LastSuperadminError(StorageError):
    """The change would leave the instance without an active superadmin (409 ``conflict``)."""


class SoleOwnerError(LastOwnerError):
    """Deleting the user would leave ``workspace_ids`` without an owner (409 ``last_owner``)."""

    def __init__(self, user_id: str, workspace_ids: list[str]) -> None:
        super().__init__(f"{user_id} is the only owner of {len(workspace_ids)} workspace(s)")
        self.workspace_ids = workspace_ids


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

    Flushed at once, so a duplicate email raises ``IntegrityError`` here. A plain write: call
    ``keep_an_active_superadmin`` first when ``is_superadmin`` or ``status`` may change.
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

    A plain write: ``remove_user`` is the deletion that keeps the instance's rules.
    """
    result = session.execute(delete(User).where(User.id == user_id))
    return bool(getattr(result, "rowcount", 0))


def remove_user(session: Session, user_id: str) -> bool:
    """Delete a user (``delete_user``) unless that leaves a workspace without an owner
    (``SoleOwnerError``) or the instance without an active superadmin (``LastSuperadminError``);
    ``False`` if there is no such user.

    Both are counted under the locks of the rows counted (see the module's lock order), so two
    deletions, or a deletion and a member's removal, never both take the last one.
    """
    is_active_superadmin = user_id in lock_active_superadmins(session)
    _lock_credentials(session, user_id)
    if _lock_user(session, user_id) is None:
        return False
    lock_workspaces(
        session,
        session.scalars(select(Membership.workspace_id).where(Membership.user_id == user_id)),
    )
    orphaned = sole_owner_workspace_ids(session, user_id)
    if orphaned:
        raise SoleOwnerError(user_id, orphaned)
    if is_active_superadmin and len(lock_active_superadmins(session)) <= 1:
        raise LastSuperadminError(f"{user_id} is the last active superadmin")
    return delete_user(session, user_id)


def lock_active_superadmins(session: Session) -> frozenset[str]:
    """The ids of the active superadmins, locked until the transaction ends.

    PostgreSQL locks their rows in id order; a transaction that waited re-reads the rows it got,
    so a superadmin demoted or blocked meanwhile is no longer in the set. SQLite takes the
    database write lock.
    """
    stmt = (
        select(User.id)
        .where(User.is_superadmin.is_(True), User.status == "active")
        .order_by(User.id)
    )
    if _hold_sqlite_write_lock(session):
        return frozenset(session.scalars(stmt))
    return frozenset(session.scalars(stmt.with_for_update()))


def keep_an_active_superadmin(
    session: Session,
    user_id: str,
    *,
    is_superadmin: bool | Unset = UNSET,
    status: str | Unset = UNSET,
) -> None:
    """Raise ``LastSuperadminError`` if giving the user ``is_superadmin`` and ``status`` would
    leave no active superadmin; the superadmins stay locked until the transaction ends, so the
    change written after this check is the one checked."""
    if isinstance(is_superadmin, Unset) and isinstance(status, Unset):
        return
    active = lock_active_superadmins(session)
    if user_id not in active:
        return  # not an active superadmin now: the change cannot lower the count
    stays = (isinstance(is_superadmin, Unset) or is_superadmin) and (
        isinstance(status, Unset) or status == "active"
    )
    if not stays and len(active) <= 1:
        raise LastSuperadminError(f"{user_id} is the last active superadmin")


def _lock_credentials(session: Session, user_id: str) -> None:
    """Wait for the user's in-flight requests that stamped a credential's last use (they hold
    its row and may be waiting for a workspace this transaction is about to lock)."""
    if _hold_sqlite_write_lock(session):
        return
    for model in (UserSession, PersonalAccessToken):
        session.execute(
            select(model.id).where(model.user_id == user_id).order_by(model.id).with_for_update()
        )


def _lock_user(session: Session, user_id: str) -> User | None:
    """The user, re-read and locked: no membership of theirs can be added until commit."""
    stmt = select(User).where(User.id == user_id).execution_options(populate_existing=True)
    if _hold_sqlite_write_lock(session):
        return session.scalars(stmt).first()
    return session.scalars(stmt.with_for_update()).first()


def _hold_sqlite_write_lock(session: Session) -> bool:
    """On SQLite, make sure the transaction holds the database write lock and say so (a no-op
    statement; a transaction begun as a writer holds it already); ``False`` elsewhere."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    session.execute(
        update(User).where(false()).values(id=User.id).execution_options(synchronize_session=False)
    )
    return True


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
