"""users: lookup for invitations, and instance user administration (superadmins only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import API_BASE, body_fields, record, unique_or_conflict
from server.runtime.context import Reply, Request
from server.runtime.errors import Conflict, NotFound
from server.security import hash_password
from server.storage import repositories as repo
from server.storage.models import User

_LAST_SUPERADMIN = "The instance must keep at least one active superadmin."


def lookup_user(req: Request) -> dict[str, Any]:
    """``{id, name}`` of the active user with this email, else 404."""
    found = repo.get_user_by_email(req.db, str(req.query["email"]))
    if found is None or found.status != "active":
        raise NotFound("No active user has this email.")
    return ser.user_ref(found)


def _key(row: User) -> tuple[datetime, str]:
    return row.created_at, row.id


def list_admin_users(req: Request) -> dict[str, Any]:
    """Every user of the instance, filtered by ``q`` and ``status``."""
    page = req.page
    assert page is not None
    q = req.query.get("q")
    status = req.query.get("status")
    filters = {
        "q": str(q) if q is not None else None,
        "status": str(status) if status is not None else None,
    }
    rows = repo.list_users(
        req.db,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
        **filters,
    )
    total = repo.count_users(req.db, **filters) if page.include_total else None
    return page.respond(rows, ser.user, key=_key, total=total)


def create_admin_user(req: Request) -> Reply:
    """Create a user; 409 ``already_exists`` when the email is taken."""
    data, _ = body_fields(req)
    db = req.db
    email = repo.normalize_email(str(data["email"]))
    if repo.get_user_by_email(db, email) is not None:
        raise Conflict("An account with this email already exists.", code="already_exists")
    is_superadmin = bool(data.get("is_superadmin", False))
    with unique_or_conflict("An account with this email already exists."):
        user = repo.create_user(
            db,
            email=email,
            name=str(data["name"]),
            password_hash=hash_password(str(data["password"])),
            is_superadmin=is_superadmin,
        )
    assert req.principal is not None
    record(
        req,
        "user.created",
        target_type="user",
        target_id=user.id,
        summary=f"{req.principal.label} created user {user.email}",
        metadata={"source": "admin", "is_superadmin": is_superadmin},
    )
    return Reply(
        ser.user(user), status=201, headers={"Location": f"{API_BASE}/admin/users/{user.id}"}
    )


def _user_or_404(req: Request) -> User:
    user = repo.get_user(req.db, str(req.path["user_id"]))
    if user is None:
        raise NotFound("User not found.")
    return user


def update_admin_user(req: Request) -> dict[str, Any]:
    """Change name, superadmin flag, status or password; keep one active superadmin."""
    user = _user_or_404(req)
    data, sent = body_fields(req)
    db = req.db
    changes: dict[str, Any] = {}
    if "name" in sent and data.get("name") is not None:
        changes["name"] = str(data["name"])
    if "is_superadmin" in sent and data.get("is_superadmin") is not None:
        changes["is_superadmin"] = bool(data["is_superadmin"])
    if "status" in sent and data.get("status") is not None:
        changes["status"] = str(data["status"])
    if "password" in sent and data.get("password") is not None:
        changes["password_hash"] = hash_password(str(data["password"]))

    before = {
        "name": user.name,
        "is_superadmin": bool(user.is_superadmin),
        "status": user.status,
    }
    blocking = changes.get("status") == "blocked" and user.status != "blocked"
    try:
        repo.keep_an_active_superadmin(
            db,
            user.id,
            is_superadmin=changes.get("is_superadmin", repo.UNSET),
            status=changes.get("status", repo.UNSET),
        )
    except repo.LastSuperadminError:
        raise Conflict(_LAST_SUPERADMIN, code="conflict") from None
    if changes:
        repo.update_user(db, user, **changes)
    if blocking:
        repo.delete_user_sessions(db, user.id)
    ended = None
    if "password_hash" in changes:
        assert req.principal is not None
        own_session = req.principal.kind == "session" and req.principal.user_id == user.id
        ended = repo.end_credentials_after_password_change(
            db,
            user.id,
            reset_by_admin=True,
            keep_session_id=req.principal.credential_id if own_session else None,
        )
    if changes:
        diff: dict[str, Any] = {
            k: {"from": before[k], "to": changes[k]}
            for k in ("name", "is_superadmin", "status")
            if k in changes and changes[k] != before[k]
        }
        fields = sorted(("password" if k == "password_hash" else k) for k in changes)
        assert req.principal is not None
        record(
            req,
            "user.updated",
            target_type="user",
            target_id=user.id,
            summary=f"{req.principal.label} updated user {user.email} ({', '.join(fields)})",
            metadata={"fields": fields, "changes": diff, **_ended_metadata(ended)},
        )
    return ser.user(user)


def _ended_metadata(ended: repo.EndedCredentials | None) -> dict[str, int]:
    """The credentials a password reset ended, for the audit record."""
    if ended is None:
        return {}
    return {"sessions_ended": ended.sessions, "tokens_revoked": ended.tokens}


def delete_admin_user(req: Request) -> None:
    """Delete a user: 409 ``last_owner`` for a workspace's last owner, 409 ``conflict`` for the
    last active superadmin."""
    user = _user_or_404(req)
    try:
        deleted = repo.remove_user(req.db, user.id)
    except repo.SoleOwnerError as exc:
        raise Conflict(
            f"The user is the last owner of {len(exc.workspace_ids)} workspace(s); "
            "transfer ownership or delete them first.",
            code="last_owner",
        ) from None
    except repo.LastSuperadminError:
        raise Conflict(_LAST_SUPERADMIN, code="conflict") from None
    if not deleted:
        raise NotFound("User not found.")
    assert req.principal is not None
    record(
        req,
        "user.deleted",
        target_type="user",
        target_id=user.id,
        summary=f"{req.principal.label} deleted user {user.email}",
        metadata={"email": user.email},
    )
