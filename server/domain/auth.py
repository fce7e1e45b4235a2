"""Signing up, in and out, and the caller's own account: who they are, what they belong to,
their name and password."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from generated import models
from server.domain import users
from server.domain.actors import Principal
from server.domain.errors import Forbidden, Invalid, NotAuthenticated
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, plain, text
from server.security import hash_password, needs_rehash, verify_password
from server.storage import password_change
from server.storage import sessions as session_rows
from server.storage import users as user_rows
from server.storage import workspaces as workspace_rows
from server.storage.common import UNSET
from server.storage.models import User

# ``Me`` embeds the first workspaces only (the schema's cap); ``GET /workspaces`` pages them all.
MAX_MEMBERSHIPS = 50


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A user and their new session; ``cookie`` is the session's secret, held only by the
    client from now on."""

    user: User
    cookie: str


@dataclass(frozen=True, slots=True)
class WorkspaceRole:
    """One workspace the caller belongs to, and their role there."""

    workspace_id: str
    workspace_name: str
    role: str


@dataclass(frozen=True, slots=True)
class Credential:
    """The credential a request came with: the token or key id (none for a session), its
    scopes (none for a session: no cap), and an API key's workspace."""

    kind: str
    id: str | None
    scopes: list[str]
    workspace_id: str | None


@dataclass(frozen=True, slots=True)
class Me:
    """The caller: the user (None for an API key), the first workspaces they belong to, and
    the credential they came with."""

    user: User | None
    memberships: list[WorkspaceRole]
    memberships_truncated: bool
    credential: Credential


def _caller(uow: UnitOfWork) -> Principal:
    actor = uow.actor
    if not isinstance(actor, Principal):
        raise NotAuthenticated("Authentication required.")
    return actor


def _own_account(uow: UnitOfWork, caller: Principal) -> User:
    user = user_rows.get_user(uow.db, caller.user_id or "")
    if user is None:  # deleted in this very moment; the credential is gone with it
        raise NotAuthenticated("The credential's user no longer exists.")
    return user


def register(
    uow: UnitOfWork, request: models.RegisterRequest, *, registration_open: bool
) -> SignedIn:
    """Create a user and sign them in; the first user of an instance without a superadmin
    becomes one."""
    if not registration_open:
        raise Forbidden("Self-registration is disabled on this instance.", code="forbidden")
    email = user_rows.normalize_email(text(request.email))
    first = user_rows.count_superadmins(uow.db, active_only=False) == 0
    user = users.add_user(
        uow,
        email=email,
        name=text(request.name),
        password=text(request.password),
        is_superadmin=first,
        summary=f"{email} registered" + (" (first user, superadmin)" if first else ""),
        metadata={"source": "registration", "is_superadmin": first},
    )
    _, cookie = session_rows.create_session(uow.db, user.id, now=uow.now)
    return SignedIn(user, cookie)


def sign_in(uow: UnitOfWork, request: models.LoginRequest) -> SignedIn:
    """Check the email and password of an active user and start a session; every failure is
    the same ``invalid_credentials``, so it tells nothing about the account."""
    user = user_rows.get_user_by_email(uow.db, text(request.email))
    password = request.password
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or user.status != "active":
        raise NotAuthenticated("The email or password is not correct.", code="invalid_credentials")
    if user.password_hash is not None and needs_rehash(user.password_hash):
        # A hash from older parameters: replaced, the account otherwise unchanged.
        user_rows.update_user(
            uow.db, user, password_hash=hash_password(password), now=user.updated_at
        )
    _, cookie = session_rows.create_session(uow.db, user.id, now=uow.now)
    return SignedIn(user, cookie)


def sign_out(uow: UnitOfWork) -> None:
    """End the session the caller signed in with (their other sessions stay)."""
    session_rows.delete_session(uow.db, _caller(uow).credential_id)


def whoami(uow: UnitOfWork) -> Me:
    """The caller: for an API key, its one workspace with the key's role; for a user, their
    account and their first ``MAX_MEMBERSHIPS`` workspaces, oldest first, with their member
    role (a token's scopes may cap it: the credential says which)."""
    caller = _caller(uow)
    if caller.kind == "api_key":
        assert caller.workspace_id is not None and caller.key_role is not None
        workspace = workspace_rows.get_workspace(uow.db, caller.workspace_id)
        memberships = (
            [WorkspaceRole(workspace.id, workspace.name, caller.key_role)]
            if workspace is not None
            else []
        )
        credential = Credential(
            "api_key", caller.credential_id, sorted(caller.scopes), caller.workspace_id
        )
        return Me(None, memberships, False, credential)
    user = _own_account(uow, caller)
    found = workspace_rows.list_workspaces_for_user(
        uow.db, user.id, order="asc", limit=MAX_MEMBERSHIPS
    )
    is_pat = caller.kind == "pat"
    return Me(
        user,
        [WorkspaceRole(ws.id, ws.name, role) for ws, role in found[:MAX_MEMBERSHIPS]],
        # The list reads one row past the limit: there are more when it found one.
        len(found) > MAX_MEMBERSHIPS,
        Credential(
            caller.kind,
            caller.credential_id if is_pat else None,
            sorted(caller.scopes) if is_pat else [],
            None,
        ),
    )


def update_me(uow: UnitOfWork, request: models.MeUpdate) -> User:
    """Change the caller's name and/or password; a new password needs the current one and
    ends the caller's other sessions (their tokens stay, listed under ``/tokens``)."""
    caller = _caller(uow)
    user = _own_account(uow, caller)
    sent = request.model_fields_set
    password = plain(request.password)
    current = request.current_password
    if "password" in sent or "current_password" in sent:
        if password is None or current is None:
            raise Invalid(
                "A password change needs both password and current_password.",
                errors=[
                    (f"body.{field}", "is required")
                    for field, value in (("password", password), ("current_password", current))
                    if value is None
                ],
            )
        if not verify_password(user.password_hash, current):
            raise Forbidden("The current password is not correct.", code="invalid_credentials")
    name = optional_text(request.name)
    fields = sorted(
        field for field, value in (("name", name), ("password", password)) if value is not None
    )
    if not fields:
        return user
    user_rows.update_user(
        uow.db,
        user,
        name=name if name is not None else UNSET,
        password_hash=hash_password(password) if password is not None else UNSET,
        now=uow.now,
    )
    metadata: dict[str, Any] = {"fields": fields, "self": True}
    if password is not None:
        ended = password_change.end_credentials_after_password_change(
            uow.db,
            user.id,
            reset_by_admin=False,
            keep_session_id=caller.credential_id,
            now=uow.now,
        )
        metadata["sessions_ended"] = ended.sessions
    uow.audit(
        "user.updated",
        target_type="user",
        target_id=user.id,
        summary=f"{user.email} updated their {' and '.join(fields)}",
        metadata=metadata,
    )
    return user


__all__ = [
    "MAX_MEMBERSHIPS",
    "Credential",
    "Me",
    "SignedIn",
    "WorkspaceRole",
    "register",
    "sign_in",
    "sign_out",
    "update_me",
    "whoami",
]
