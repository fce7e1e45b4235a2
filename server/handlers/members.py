"""members: workspace membership and roles, with the owner and last-owner rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import API_BASE, body_fields, record, unique_or_conflict
from server.runtime import roles
from server.runtime.context import Reply, Request
from server.runtime.errors import Conflict, Forbidden, NotFound
from server.storage import repositories as repo
from server.storage.models import Membership, User

_ALREADY_MEMBER = "The user is already a member of this workspace."
_LAST_OWNER = "A workspace must keep at least one owner."


def _key(row: tuple[Membership, User]) -> tuple[datetime, str]:
    return row[0].created_at, row[0].user_id


def _serialize_row(row: tuple[Membership, User]) -> dict[str, Any]:
    return ser.member(row[0], row[1])


def list_members(req: Request) -> dict[str, Any]:
    """The workspace's members, optionally only those with one role."""
    page = req.page
    assert page is not None
    workspace_id = str(req.path["workspace_id"])
    role = str(req.query["role"]) if req.query.get("role") is not None else None
    rows = repo.list_members(
        req.db,
        workspace_id,
        role=role,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
    )
    total = repo.count_members(req.db, workspace_id, role=role) if page.include_total else None
    return page.respond(rows, _serialize_row, key=_key, total=total)


def _require_owner_for(req: Request, why: str) -> None:
    """Only an owner grants, changes or removes ``owner``."""
    if req.role != "owner":
        raise Forbidden(f"Only an owner can {why}.", code="insufficient_role")


def _label(user: User) -> str:
    return user.email


def add_member(req: Request) -> Reply:
    """Add an existing user (by id or email) with a role."""
    assert req.role is not None and req.principal is not None
    workspace_id = str(req.path["workspace_id"])
    data, _ = body_fields(req)
    role = str(data["role"])
    if role == "owner":
        _require_owner_for(req, "add an owner")
    db = req.db
    if data.get("user_id") is not None:
        user = repo.get_user(db, str(data["user_id"]))
    elif data.get("email") is not None:
        user = repo.get_user_by_email(db, str(data["email"]))
    else:
        user = None
    if user is None:
        raise NotFound("User not found.")
    # The workspace is locked since admission (every write in a workspace is), so the checks
    # below still hold when the membership is written.
    if repo.get_member_role(db, workspace_id, user.id) is not None:
        raise Conflict(_ALREADY_MEMBER, code="already_exists")
    ws = repo.get_workspace(db, workspace_id)
    if ws is None:
        raise NotFound("Workspace not found.")
    limit = int(ser.settings(ws.settings)["max_members"])
    if repo.count_members(db, workspace_id) >= limit:
        raise Conflict(f"The workspace already has its maximum of {limit} members.")
    with unique_or_conflict(_ALREADY_MEMBER):
        membership = repo.add_member(db, workspace_id, user.id, role)
    record(
        req,
        "member.added",
        workspace_id=workspace_id,
        target_type="member",
        target_id=user.id,
        summary=f"{req.principal.label} added {_label(user)} as {role}",
        metadata={"email": user.email, "role": role},
    )
    return Reply(
        ser.member(membership, user),
        status=201,
        headers={"Location": f"{API_BASE}/workspaces/{workspace_id}/members/{user.id}"},
    )


def _member(req: Request) -> tuple[Membership, User]:
    workspace_id = str(req.path["workspace_id"])
    user_id = str(req.path["user_id"])
    membership = repo.get_membership(req.db, workspace_id, user_id)
    user = repo.get_user(req.db, user_id) if membership is not None else None
    if membership is None or user is None:
        raise NotFound("Member not found.")
    return membership, user


def update_member(req: Request) -> dict[str, Any]:
    """Change a member's role: owners alone touch ``owner``; the last owner stays."""
    assert req.role is not None and req.principal is not None
    membership, user = _member(req)
    data, sent = body_fields(req)
    new_role = data.get("role") if "role" in sent else None
    if new_role is None or str(new_role) == membership.role:
        return ser.member(membership, user)
    new_role = str(new_role)
    old_role = membership.role
    if new_role == "owner":
        _require_owner_for(req, "grant the owner role")
    if old_role == "owner":
        _require_owner_for(req, "change an owner's role")
    if not roles.at_least(req.role, new_role) and req.role != "owner":
        raise Forbidden(
            f"You cannot grant a role above your own ({req.role}).", code="insufficient_role"
        )
    try:
        updated = repo.update_member_role(req.db, membership.workspace_id, user.id, new_role)
    except repo.LastOwnerError:
        raise Conflict(_LAST_OWNER, code="last_owner") from None
    if updated is None:
        raise NotFound("Member not found.")
    record(
        req,
        "member.role_changed",
        workspace_id=membership.workspace_id,
        target_type="member",
        target_id=user.id,
        summary=f"{req.principal.label} changed {_label(user)} from {old_role} to {new_role}",
        metadata={"email": user.email, "from": old_role, "to": new_role},
    )
    return ser.member(updated, user)


def remove_member(req: Request) -> None:
    """Remove a member: owners alone remove owners; the last owner stays."""
    assert req.role is not None and req.principal is not None
    membership, user = _member(req)
    role = membership.role
    if role == "owner":
        _require_owner_for(req, "remove an owner")
    try:
        removed = repo.remove_member(req.db, membership.workspace_id, user.id)
    except repo.LastOwnerError:
        raise Conflict(_LAST_OWNER, code="last_owner") from None
    if not removed:
        raise NotFound("Member not found.")
    record(
        req,
        "member.removed",
        workspace_id=membership.workspace_id,
        target_type="member",
        target_id=user.id,
        summary=f"{req.principal.label} removed {_label(user)} ({role})",
        metadata={"email": user.email, "role": role},
    )
