"""users: lookup for invitations, and instance user administration (superadmins only)."""

from __future__ import annotations

from typing import Any

from server.domain import users
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request


def lookup_user(req: Request) -> object:
    """``{id, name}`` of the active user with this email, else 404."""
    return users.find_user(req.work, req.query["email"])


def list_admin_users(req: Request) -> dict[str, Any]:
    """Every user of the instance, filtered by ``q`` and ``status``."""
    assert req.page is not None
    found, total = users.list_users(
        req.work, q=req.query.get("q"), status=req.query.get("status"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_admin_user(req: Request) -> Reply:
    """Create a user; 409 ``already_exists`` when the email is taken."""
    user = users.create_user(req.work, req.body)
    return Reply(user, status=201, headers={"Location": f"{API_BASE}/admin/users/{user.id}"})


def update_admin_user(req: Request) -> object:
    """Change name, superadmin flag, status or password; keep one active superadmin."""
    return users.update_user(req.work, req.path["user_id"], req.body)


def delete_admin_user(req: Request) -> None:
    """Delete a user: 409 ``last_owner`` for a workspace's last owner, 409 ``conflict`` for the
    last active superadmin."""
    users.delete_user(req.work, req.path["user_id"])
