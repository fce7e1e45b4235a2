"""Workspace members: who may grant or take away which role (the spec's
``x-gantry-role-grants``), a membership limit, and a workspace that always keeps an owner."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain.errors import Conflict, Forbidden, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, text
from server.domain.workspaces import get_workspace, settings_of
from server.storage import users as user_rows
from server.storage import workspaces as rows
from server.storage.common import LastOwnerError
from server.storage.models import Membership, User
from server.vocabulary import ROLE_GRANTS

ALREADY_MEMBER = "The user is already a member of this workspace."
LAST_OWNER = "A workspace must keep at least one owner."


def list_members(
    uow: UnitOfWork, workspace_id: str, *, role: str | None, window: Window
) -> tuple[Sequence[Membership], int | None]:
    """The workspace's members (only those with ``role``, if given) in ``window``, and their
    count if asked."""
    role = optional_text(role)
    found = rows.list_members(
        uow.db,
        workspace_id,
        role=role,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    total = rows.count_members(uow.db, workspace_id, role=role) if window.include_total else None
    return found, total


def position(member: Membership) -> tuple[datetime, str]:
    """A member's place in the list (its cursor): memberships have no id of their own."""
    return member.created_at, member.user_id


def add_member(
    uow: UnitOfWork, workspace_id: str, request: models.MemberAdd, *, caller_role: str
) -> Membership:
    """Add an existing user, named by id or by email, with a role the caller may grant, to a
    workspace that has room for one more member."""
    role = text(request.role)
    _check_grant(caller_role, role, f"add {_a(role)}")
    user = _user(uow, request)
    # The workspace is locked since admission (every write in a workspace is), so the checks
    # below still hold when the membership is written.
    if rows.get_member_role(uow.db, workspace_id, user.id) is not None:
        raise Conflict(ALREADY_MEMBER, code="already_exists")
    limit = int(settings_of(get_workspace(uow, workspace_id))["max_members"])
    if rows.count_members(uow.db, workspace_id) >= limit:
        raise Conflict(f"The workspace already has its maximum of {limit} members.")
    try:
        membership = rows.add_member(uow.db, workspace_id, user.id, role, now=uow.now)
    except IntegrityError:  # added meanwhile by a concurrent request
        raise Conflict(ALREADY_MEMBER, code="already_exists") from None
    uow.audit(
        "member.added",
        workspace_id=workspace_id,
        target_type="member",
        target_id=user.id,
        summary=f"{uow.actor.label} added {user.email} as {role}",
        metadata={"email": user.email, "role": role},
    )
    return membership


def _user(uow: UnitOfWork, request: models.MemberAdd) -> User:
    if request.user_id is not None:
        user = user_rows.get_user(uow.db, text(request.user_id))
    elif request.email is not None:
        user = user_rows.get_user_by_email(uow.db, text(request.email))
    else:
        user = None
    if user is None:
        raise NotFound("User not found.")
    return user


def get_member(uow: UnitOfWork, workspace_id: str, user_id: str) -> Membership:
    """The membership of ``user_id`` in the workspace, or not found."""
    membership = rows.get_membership(uow.db, workspace_id, user_id)
    if membership is None:
        raise NotFound("Member not found.")
    return membership


def change_role(
    uow: UnitOfWork,
    workspace_id: str,
    user_id: str,
    request: models.MemberUpdate,
    *,
    caller_role: str,
) -> Membership:
    """Give a member another role: the caller must be allowed to take away the old role and
    to grant the new one, and the last owner stays an owner. The same role changes nothing."""
    membership = get_member(uow, workspace_id, user_id)
    old_role = membership.role
    new_role = optional_text(request.role) if "role" in request.model_fields_set else None
    if new_role is None or new_role == old_role:
        return membership
    _check_grant(caller_role, new_role, f"grant the {new_role} role")
    _check_grant(caller_role, old_role, f"change {_a(old_role)}'s role")
    try:
        updated = rows.update_member_role(uow.db, workspace_id, user_id, new_role, now=uow.now)
    except LastOwnerError:
        raise Conflict(LAST_OWNER, code="last_owner") from None
    if updated is None:
        raise NotFound("Member not found.")
    uow.audit(
        "member.role_changed",
        workspace_id=workspace_id,
        target_type="member",
        target_id=user_id,
        summary=f"{uow.actor.label} changed {updated.email} from {old_role} to {new_role}",
        metadata={"email": updated.email, "from": old_role, "to": new_role},
    )
    return updated


def remove_member(uow: UnitOfWork, workspace_id: str, user_id: str, *, caller_role: str) -> None:
    """Remove a member whose role the caller may take away; the last owner stays."""
    membership = get_member(uow, workspace_id, user_id)
    role, email = membership.role, membership.email
    _check_grant(caller_role, role, f"remove {_a(role)}")
    try:
        removed = rows.remove_member(uow.db, workspace_id, user_id)
    except LastOwnerError:
        raise Conflict(LAST_OWNER, code="last_owner") from None
    if not removed:
        raise NotFound("Member not found.")
    uow.audit(
        "member.removed",
        workspace_id=workspace_id,
        target_type="member",
        target_id=user_id,
        summary=f"{uow.actor.label} removed {email} ({role})",
        metadata={"email": email, "role": role},
    )


def _check_grant(caller_role: str, role: str, what: str) -> None:
    """Refuse (``insufficient_role``) unless ``caller_role`` may grant or take away ``role``."""
    if role in ROLE_GRANTS.get(caller_role, frozenset()):
        return
    granters = " or ".join(_a(r) for r, granted in ROLE_GRANTS.items() if role in granted)
    detail = f"Only {granters} can {what}." if granters else f"No member can {what}."
    raise Forbidden(detail, code="insufficient_role")


def _a(role: str) -> str:
    """``role`` with its indefinite article: "an owner", "a viewer"."""
    return f"{'an' if role[0] in 'aeiou' else 'a'} {role}"
