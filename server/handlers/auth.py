"""auth: registration, login and logout with the session cookie, and the current identity."""

from __future__ import annotations

from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import (
    API_BASE,
    body_fields,
    cleared_session_cookie,
    record,
    session_cookie,
    unique_or_conflict,
)
from server.runtime.context import Reply, Request
from server.runtime.errors import BadRequest, Conflict, FieldError, Forbidden, Unauthenticated
from server.security import hash_password, needs_rehash, verify_password
from server.storage import repositories as repo

# ``Me`` embeds the first workspaces only (the schema's cap); ``GET /workspaces`` pages them all.
_MAX_MEMBERSHIPS = 50


def _limit_per_ip(req: Request) -> None:
    """The auth endpoints' per-IP rate limit (429 with Retry-After)."""
    req.state.login_limiter.hit(req.client_ip or "unknown")


def register(req: Request) -> Reply:
    """Create a user, sign it in; the first user of an instance without a superadmin becomes one."""
    if not req.state.config.registration_enabled:
        raise Forbidden("Self-registration is disabled on this instance.", code="forbidden")
    _limit_per_ip(req)
    data, _ = body_fields(req)
    db = req.db
    email = repo.normalize_email(str(data["email"]))
    if repo.get_user_by_email(db, email) is not None:
        raise Conflict("An account with this email already exists.", code="already_exists")
    first = repo.count_superadmins(db, active_only=False) == 0
    with unique_or_conflict("An account with this email already exists."):
        user = repo.create_user(
            db,
            email=email,
            name=str(data["name"]),
            password_hash=hash_password(str(data["password"])),
            is_superadmin=first,
        )
    _, cookie_value = repo.create_session(db, user.id)
    record(
        req,
        "user.created",
        target_type="user",
        target_id=user.id,
        summary=f"{user.email} registered" + (" (first user, superadmin)" if first else ""),
        metadata={"source": "registration", "is_superadmin": first},
    )
    return Reply(
        ser.user(user),
        status=201,
        headers={"Location": f"{API_BASE}/auth/me"},
        cookies=[session_cookie(req, cookie_value)],
    )


def login(req: Request) -> Reply:
    """Check email and password and start a session; every failure is ``invalid_credentials``."""
    _limit_per_ip(req)
    data, _ = body_fields(req)
    db = req.db
    user = repo.get_user_by_email(db, str(data["email"]))
    password = str(data["password"])
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or user.status != "active":
        raise Unauthenticated("The email or password is not correct.", code="invalid_credentials")
    if user.password_hash is not None and needs_rehash(user.password_hash):
        repo.update_user(db, user, password_hash=hash_password(password), now=user.updated_at)
    _, cookie_value = repo.create_session(db, user.id)
    return Reply(ser.user(user), cookies=[session_cookie(req, cookie_value)])


def logout(req: Request) -> Reply:
    """End this session and clear the cookie."""
    assert req.principal is not None
    repo.delete_session(req.db, req.principal.credential_id)
    return Reply(None, status=204, cookies=[cleared_session_cookie(req)])


def get_me(req: Request) -> dict[str, Any]:
    """The user (null for an API key), the memberships and the credential of this request."""
    principal = req.principal
    assert principal is not None
    db = req.db
    if principal.kind == "api_key":
        assert principal.workspace_id is not None and principal.key_role is not None
        ws = repo.get_workspace(db, principal.workspace_id)
        memberships = (
            [{"workspace_id": ws.id, "workspace_name": ws.name, "role": principal.key_role}]
            if ws is not None
            else []
        )
        return {
            "user": None,
            "memberships": memberships,
            "memberships_truncated": False,
            "credential": {
                "kind": "api_key",
                "id": principal.credential_id,
                "scopes": sorted(principal.scopes),
                "workspace_id": principal.workspace_id,
            },
        }
    user = repo.get_user(db, req.user_id)
    if user is None:  # deleted in this very moment; the credential is gone with it
        raise Unauthenticated("The credential's user no longer exists.")
    rows = repo.list_workspaces_for_user(db, user.id, order="asc", limit=_MAX_MEMBERSHIPS)
    return {
        "user": ser.user(user),
        "memberships": [
            {"workspace_id": ws.id, "workspace_name": ws.name, "role": role}
            for ws, role in rows[:_MAX_MEMBERSHIPS]
        ],
        # The list function reads one row past the limit: there is more when it found one.
        "memberships_truncated": len(rows) > _MAX_MEMBERSHIPS,
        "credential": {
            "kind": principal.kind,
            "id": principal.credential_id if principal.kind == "pat" else None,
            "scopes": sorted(principal.scopes) if principal.kind == "pat" else [],
            "workspace_id": None,
        },
    }


def update_me(req: Request) -> dict[str, Any]:
    """Change the display name and/or the password (which needs the current one)."""
    data, sent = body_fields(req)
    db = req.db
    user = repo.get_user(db, req.user_id)
    if user is None:
        raise Unauthenticated("The credential's user no longer exists.")
    changes: dict[str, Any] = {}
    if "password" in sent or "current_password" in sent:
        if data.get("password") is None or data.get("current_password") is None:
            raise BadRequest(
                "A password change needs both password and current_password.",
                errors=[
                    FieldError(f"body.{name}", "is required")
                    for name in ("password", "current_password")
                    if data.get(name) is None
                ],
            )
        if not verify_password(user.password_hash, str(data["current_password"])):
            raise Forbidden("The current password is not correct.", code="invalid_credentials")
        changes["password_hash"] = hash_password(str(data["password"]))
    if "name" in sent and data.get("name") is not None:
        changes["name"] = str(data["name"])
    if changes:
        repo.update_user(db, user, **changes)
        metadata: dict[str, Any] = {"self": True}
        if "password_hash" in changes:
            assert req.principal is not None
            ended = repo.end_credentials_after_password_change(
                db, user.id, reset_by_admin=False, keep_session_id=req.principal.credential_id
            )
            metadata["sessions_ended"] = ended.sessions
        fields = sorted(("password" if k == "password_hash" else k) for k in changes)
        record(
            req,
            "user.updated",
            target_type="user",
            target_id=user.id,
            summary=f"{user.email} updated their {' and '.join(fields)}",
            metadata={"fields": fields, **metadata},
        )
    return ser.user(user)
