"""Instance users: unique emails, an instance that always keeps an active superadmin, and
workspaces that a deleted user never leaves without an owner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain import tokens
from server.domain.actors import Principal
from server.domain.errors import Conflict, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork, rfc3339
from server.domain.values import optional_text, plain, text
from server.security import hash_password
from server.storage import password_change
from server.storage import sessions as session_rows
from server.storage import users as rows
from server.storage.common import UNSET
from server.storage.models import User

LAST_SUPERADMIN = "The instance must keep at least one active superadmin."
EMAIL_TAKEN = "An account with this email already exists."

BOOTSTRAP_EMAIL = "admin@gantry.local"
BOOTSTRAP_TOKEN_LIFETIME = timedelta(days=365)


def find_user(uow: UnitOfWork, email: str) -> User:
    """The active user with this email (any case), for invitations; else not found."""
    found = rows.get_user_by_email(uow.db, text(email))
    if found is None or found.status != "active":
        raise NotFound("No active user has this email.")
    return found


def list_users(
    uow: UnitOfWork, *, q: str | None, status: str | None, window: Window
) -> tuple[Sequence[User], int | None]:
    """Every user of the instance matching ``q`` (email or name) and ``status``, in
    ``window``, and their count if asked."""
    q, status = optional_text(q), optional_text(status)
    found = rows.list_users(
        uow.db,
        q=q,
        status=status,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    total = rows.count_users(uow.db, q=q, status=status) if window.include_total else None
    return found, total


def add_user(
    uow: UnitOfWork,
    *,
    email: str,
    name: str,
    password: str | None,
    is_superadmin: bool,
    summary: str,
    metadata: Mapping[str, Any],
) -> User:
    """Every way a user comes to be (an administrator, a registration, the bootstrap): a
    unique email, the password hashed (none: the user cannot sign in with one), and the
    ``user.created`` event saying how (``summary``, ``metadata``)."""
    email = rows.normalize_email(email)
    if rows.get_user_by_email(uow.db, email) is not None:
        raise Conflict(EMAIL_TAKEN, code="already_exists")
    try:
        user = rows.create_user(
            uow.db,
            email=email,
            name=name,
            password_hash=hash_password(password) if password is not None else None,
            is_superadmin=is_superadmin,
            now=uow.now,
        )
    except IntegrityError:  # registered meanwhile by a concurrent request
        raise Conflict(EMAIL_TAKEN, code="already_exists") from None
    uow.audit(
        "user.created",
        target_type="user",
        target_id=user.id,
        summary=summary,
        metadata=metadata,
    )
    return user


def create_user(uow: UnitOfWork, request: models.AdminUserCreate) -> User:
    """An administrator creates a user, superadmin or not."""
    email = rows.normalize_email(text(request.email))
    return add_user(
        uow,
        email=email,
        name=text(request.name),
        password=text(request.password),
        is_superadmin=request.is_superadmin,
        summary=f"{uow.actor.label} created user {email}",
        metadata={"source": "admin", "is_superadmin": request.is_superadmin},
    )


def bootstrap_superadmin(uow: UnitOfWork, token: str) -> User | None:
    """On an instance without users, a superadmin without a password whose personal access
    token (every scope, one year) is ``token``; None when the instance has users already."""
    if rows.count_users(uow.db):
        return None
    user = add_user(
        uow,
        email=BOOTSTRAP_EMAIL,
        name="Bootstrap Admin",
        password=None,
        is_superadmin=True,
        summary=f"Bootstrap superadmin {BOOTSTRAP_EMAIL} created",
        metadata={"source": "GANTRY_BOOTSTRAP_TOKEN"},
    )
    request = models.TokenCreate.model_validate(
        {
            "name": "bootstrap",
            "scopes": sorted(scope.value for scope in models.TokenScope),
            "expires_at": rfc3339(uow.now + BOOTSTRAP_TOKEN_LIFETIME),
        }
    )
    tokens.issue_token(uow, user.id, request, secret=token)
    return user


def _user(uow: UnitOfWork, user_id: str) -> User:
    user = rows.get_user(uow.db, user_id)
    if user is None:
        raise NotFound("User not found.")
    return user


def _own_session(actor: object, user_id: str) -> str | None:
    """The session ``actor`` signed in with, when it is ``user_id``'s own (a password change
    keeps it)."""
    if isinstance(actor, Principal) and actor.kind == "session" and actor.user_id == user_id:
        return actor.credential_id
    return None


def update_user(uow: UnitOfWork, user_id: str, request: models.AdminUserUpdate) -> User:
    """An administrator changes a user's name, superadmin flag, status or password.

    The instance keeps an active superadmin; blocking ends the user's sessions; a new password
    is an account recovery, which ends every session (but the administrator's own) and revokes
    every token of the user.
    """
    user = _user(uow, user_id)
    name = optional_text(request.name)
    is_superadmin = request.is_superadmin
    status = optional_text(request.status)
    password = plain(request.password)
    changes: dict[str, Any] = {
        field: value
        for field, value in (
            ("name", name),
            ("is_superadmin", is_superadmin),
            ("status", status),
            ("password", password),
        )
        if value is not None
    }
    before = {"name": user.name, "is_superadmin": user.is_superadmin, "status": user.status}
    blocking = status == "blocked" and user.status != "blocked"
    try:
        rows.keep_an_active_superadmin(
            uow.db,
            user.id,
            is_superadmin=UNSET if is_superadmin is None else is_superadmin,
            status=UNSET if status is None else status,
        )
    except rows.LastSuperadminError:
        raise Conflict(LAST_SUPERADMIN, code="conflict") from None
    if not changes:
        return user
    rows.update_user(
        uow.db,
        user,
        name=UNSET if name is None else name,
        is_superadmin=UNSET if is_superadmin is None else is_superadmin,
        status=UNSET if status is None else status,
        password_hash=UNSET if password is None else hash_password(password),
        now=uow.now,
    )
    if blocking:
        session_rows.delete_user_sessions(uow.db, user.id)
    ended: dict[str, int] = {}
    if password is not None:
        reset = password_change.end_credentials_after_password_change(
            uow.db,
            user.id,
            reset_by_admin=True,
            keep_session_id=_own_session(uow.actor, user.id),
            now=uow.now,
        )
        ended = {"sessions_ended": reset.sessions, "tokens_revoked": reset.tokens}
    diff = {
        field: {"from": before[field], "to": changes[field]}
        for field in ("name", "is_superadmin", "status")
        if field in changes and changes[field] != before[field]
    }
    fields = sorted(changes)
    uow.audit(
        "user.updated",
        target_type="user",
        target_id=user.id,
        summary=f"{uow.actor.label} updated user {user.email} ({', '.join(fields)})",
        metadata={"fields": fields, "changes": diff, **ended},
    )
    return user


def delete_user(uow: UnitOfWork, user_id: str) -> None:
    """Delete a user with their sessions, tokens and memberships, unless they are a
    workspace's last owner or the instance's last active superadmin."""
    user = _user(uow, user_id)
    try:
        deleted = rows.remove_user(uow.db, user.id)
    except rows.SoleOwnerError as exc:
        raise Conflict(
            f"The user is the last owner of {len(exc.workspace_ids)} workspace(s); "
            "transfer ownership or delete them first.",
            code="last_owner",
        ) from None
    except rows.LastSuperadminError:
        raise Conflict(LAST_SUPERADMIN, code="conflict") from None
    if not deleted:
        raise NotFound("User not found.")
    uow.audit(
        "user.deleted",
        target_type="user",
        target_id=user.id,
        summary=f"{uow.actor.label} deleted user {user.email}",
        metadata={"email": user.email},
    )


__all__ = [
    "BOOTSTRAP_EMAIL",
    "EMAIL_TAKEN",
    "LAST_SUPERADMIN",
    "add_user",
    "bootstrap_superadmin",
    "create_user",
    "delete_user",
    "find_user",
    "list_users",
    "update_user",
]
