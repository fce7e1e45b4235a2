"""Workspaces and their memberships (with the last-owner rule)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, select, update
from sqlalchemy.orm import Session, contains_eager

from server.security import new_id
from server.storage.common import UNSET, Cursor, LastOwnerError, Order, Unset, apply_keyset
from server.storage.models import Membership, Workspace
from server.storage.types import utcnow

__all__ = [
    "add_member",
    "count_members",
    "count_owners",
    "count_workspaces_for_user",
    "create_workspace",
    "delete_workspace",
    "get_member_role",
    "get_membership",
    "get_workspace",
    "get_workspace_by_slug",
    "get_workspace_for_member",
    "list_members",
    "list_workspaces_for_user",
    "lock_workspace",
    "lock_workspaces",
    "remove_member",
    "update_member_role",
    "update_workspace",
]


# --- workspaces -------------------------------------------------------------------------------


def create_workspace(
    session: Session,
    *,
    name: str,
    slug: str,
    owner_id: str,
    settings: Mapping[str, Any] | None = None,
    now: datetime | None = None,
) -> Workspace:
    """Insert a workspace and make ``owner_id`` its owner. A duplicate slug raises
    ``IntegrityError`` here (flushed)."""
    now = now or utcnow()
    workspace = Workspace(
        id=new_id("ws_"),
        name=name,
        slug=slug,
        settings=dict(settings or {}),
        created_at=now,
        updated_at=now,
    )
    session.add(workspace)
    session.flush()
    session.add(
        Membership(
            workspace_id=workspace.id,
            user_id=owner_id,
            role="owner",
            created_at=now,
            updated_at=now,
        )
    )
    session.flush()
    return workspace


def get_workspace(session: Session, workspace_id: str) -> Workspace | None:
    return session.get(Workspace, workspace_id)


def get_workspace_by_slug(session: Session, slug: str) -> Workspace | None:
    return session.scalars(select(Workspace).where(Workspace.slug == slug)).first()


def get_workspace_for_member(
    session: Session, workspace_id: str, user_id: str
) -> tuple[Workspace, str] | None:
    """The workspace and the user's role in it, or ``None`` if either is missing or the user is
    not a member (the "404, not 403" visibility rule in one query)."""
    row = session.execute(
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Workspace.id == workspace_id, Membership.user_id == user_id)
    ).first()
    return None if row is None else row._tuple()


def update_workspace(
    session: Session,
    workspace: Workspace,
    *,
    name: str | Unset = UNSET,
    slug: str | Unset = UNSET,
    settings: Mapping[str, Any] | Unset = UNSET,
    now: datetime | None = None,
) -> Workspace:
    """Change the given fields and bump ``updated_at``; ``settings`` replaces the whole document
    (merge before calling for a partial update). A duplicate slug raises ``IntegrityError``."""
    if not isinstance(name, Unset):
        workspace.name = name
    if not isinstance(slug, Unset):
        workspace.slug = slug
    if not isinstance(settings, Unset):
        workspace.settings = dict(settings)
    workspace.updated_at = now or utcnow()
    session.flush()
    return workspace


def delete_workspace(session: Session, workspace_id: str) -> bool:
    """Hard-delete; memberships and API keys cascade, audit events stay."""
    result = session.execute(delete(Workspace).where(Workspace.id == workspace_id))
    return bool(getattr(result, "rowcount", 0))


def list_workspaces_for_user(
    session: Session,
    user_id: str,
    *,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[tuple[Workspace, str]]:
    """``(workspace, role)`` pairs for the user's workspaces, keyset on the workspace's
    ``(created_at, id)``; up to ``limit + 1`` rows."""
    stmt: Select[tuple[Workspace, str]] = (
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
    )
    stmt = apply_keyset(
        stmt, Workspace.created_at, Workspace.id, after=after, order=order, limit=limit
    )
    return session.execute(stmt).tuples().all()


def count_workspaces_for_user(session: Session, user_id: str) -> int:
    stmt = select(func.count()).select_from(Membership).where(Membership.user_id == user_id)
    return session.scalar(stmt) or 0


def lock_workspace(session: Session, workspace_id: str) -> bool:
    """Serialise writers of one workspace until the transaction ends; ``False`` if missing.

    Every write in a workspace takes this lock before it reads the caller's role (the
    dispatcher does), and every change to its memberships holds it, so a role, an owner count
    or a membership read after it stays true until the transaction commits.

    PostgreSQL: ``SELECT ... FOR NO KEY UPDATE`` on the row (rows that merely reference the
    workspace can still be inserted). SQLite: a no-op ``UPDATE`` that takes the database write
    lock (already held by a transaction begun as a writer), so reads that follow see every
    committed change.
    """
    return bool(lock_workspaces(session, [workspace_id]))


def lock_workspaces(session: Session, workspace_ids: Iterable[str]) -> int:
    """``lock_workspace`` for several workspaces at once, in id order (two transactions locking
    overlapping sets queue instead of deadlocking); how many exist."""
    ids = sorted(set(workspace_ids))
    if not ids:
        return 0
    if session.get_bind().dialect.name == "sqlite":
        result = session.execute(
            update(Workspace)
            .where(Workspace.id.in_(ids))
            .values(name=Workspace.name)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0))
    stmt = (
        select(Workspace.id)
        .where(Workspace.id.in_(ids))
        .order_by(Workspace.id)
        .with_for_update(key_share=True)
    )
    return len(session.scalars(stmt).all())


# --- memberships ------------------------------------------------------------------------------


def get_membership(session: Session, workspace_id: str, user_id: str) -> Membership | None:
    return session.scalars(
        select(Membership)
        .where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
        .execution_options(populate_existing=True)
    ).first()


def get_member_role(session: Session, workspace_id: str, user_id: str) -> str | None:
    return session.scalar(
        select(Membership.role).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user_id
        )
    )


def add_member(
    session: Session,
    workspace_id: str,
    user_id: str,
    role: str,
    *,
    now: datetime | None = None,
) -> Membership:
    """Insert a membership. An existing membership (or a missing user or workspace) raises
    ``IntegrityError`` here (flushed)."""
    now = now or utcnow()
    membership = Membership(
        workspace_id=workspace_id, user_id=user_id, role=role, created_at=now, updated_at=now
    )
    session.add(membership)
    session.flush()
    return membership


def count_owners(session: Session, workspace_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(Membership)
        .where(Membership.workspace_id == workspace_id, Membership.role == "owner")
    )
    return session.scalar(stmt) or 0


def update_member_role(
    session: Session,
    workspace_id: str,
    user_id: str,
    role: str,
    *,
    now: datetime | None = None,
) -> Membership | None:
    """Change a member's role; ``None`` if not a member. Raises ``LastOwnerError`` when this
    would demote the workspace's last owner. Locks the workspace (``lock_workspace``) first, so
    concurrent demotions cannot both pass the check."""
    lock_workspace(session, workspace_id)
    membership = get_membership(session, workspace_id, user_id)
    if membership is None:
        return None
    if membership.role == "owner" and role != "owner" and count_owners(session, workspace_id) <= 1:
        raise LastOwnerError(f"{user_id} is the last owner of {workspace_id}")
    membership.role = role
    membership.updated_at = now or utcnow()
    session.flush()
    return membership


def remove_member(session: Session, workspace_id: str, user_id: str) -> bool:
    """Remove a member; ``False`` if not a member. Raises ``LastOwnerError`` for the last owner
    (locks the workspace first, like ``update_member_role``)."""
    lock_workspace(session, workspace_id)
    membership = get_membership(session, workspace_id, user_id)
    if membership is None:
        return False
    if membership.role == "owner" and count_owners(session, workspace_id) <= 1:
        raise LastOwnerError(f"{user_id} is the last owner of {workspace_id}")
    session.delete(membership)
    session.flush()
    return True


def _member_filters(workspace_id: str, role: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [Membership.workspace_id == workspace_id]
    if role is not None:
        filters.append(Membership.role == role)
    return filters


def list_members(
    session: Session,
    workspace_id: str,
    *,
    role: str | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[Membership]:
    """Memberships (optionally only ``role``) with their users, keyset on the membership's
    ``(created_at, user_id)`` (the cursor's id part is the user id); up to ``limit + 1`` rows."""
    stmt: Select[tuple[Membership]] = (
        select(Membership)
        .join(Membership.user)
        .options(contains_eager(Membership.user))
        .where(*_member_filters(workspace_id, role))
    )
    stmt = apply_keyset(
        stmt, Membership.created_at, Membership.user_id, after=after, order=order, limit=limit
    )
    return session.scalars(stmt).all()


def count_members(session: Session, workspace_id: str, *, role: str | None = None) -> int:
    stmt = select(func.count()).select_from(Membership).where(*_member_filters(workspace_id, role))
    return session.scalar(stmt) or 0
