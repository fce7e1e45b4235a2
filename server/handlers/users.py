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


def _is_active_superadmin(user: User) -> bool:
    return bool(user.is_superadmin) and user.status == "active"


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

    stays_active_superadmin = changes.get("is_superadmin", user.is_superadmin) and (
        changes.get("status", user.status) == "active"
    )
    if (
        _is_active_superadmin(user)
        and not stays_active_superadmin
        and repo.count_superadmins(db, active_only=True) <= 1
    ):
        raise Conflict("The instance must keep at least one active superadmin.", code="conflict")

    before = {
        "name": user.name,
        "is_superadmin": bool(user.is_superadmin),
        "status": user.status,
    }
    blocking = changes.get("status") == "blocked" and user.status != "blocked"
    if changes:
        repo.update_user(db, user, **changes)
    if blocking:
        repo.delete_user_sessions(db, user.id)
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
            metadata={"fields": fields, "changes": diff},
        )
    return ser.user(user)


def delete_admin_user(req: Request) -> None:
    """Delete a user: 409 ``last_owner`` for a workspace's last owner, 409 ``conflict`` for the
    last active superadmin."""
    user = _user_or_404(req)
    db = req.db
    orphaned = repo.sole_owner_workspace_ids(db, user.id)
    if orphaned:
        raise Conflict(
            f"The user is the last owner of {len(orphaned)} workspace(s); "
            "transfer ownership or delete them first.",
            code="last_owner",
        )
    if _is_active_superadmin(user) and repo.count_superadmins(db, active_only=True) <= 1:
        raise Conflict("The instance must keep at least one active superadmin.", code="conflict")
    assert req.principal is not None
    record(
        req,
        "user.deleted",
        target_type="user",
        target_id=user.id,
        summary=f"{req.principal.label} deleted user {user.email}",
        metadata={"email": user.email},
    )
    repo.delete_user(db, user.id)
