"""members: workspace membership and roles, with the owner and last-owner rules."""

from __future__ import annotations

from typing import Any

from server.domain import members
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request


def list_members(req: Request) -> dict[str, Any]:
    """The workspace's members, optionally only those with one role."""
    assert req.page is not None
    found, total = members.list_members(
        req.work, req.path["workspace_id"], role=req.query.get("role"), window=req.page
    )
    return req.page.respond(found, key=members.position, total=total)


def add_member(req: Request) -> Reply:
    """Add an existing user (by id or email) with a role."""
    assert req.role is not None
    workspace_id = req.path["workspace_id"]
    added = members.add_member(req.work, workspace_id, req.body, caller_role=req.role)
    return Reply(
        added,
        status=201,
        headers={"Location": f"{API_BASE}/workspaces/{workspace_id}/members/{added.user_id}"},
    )


def update_member(req: Request) -> Any:
    """Change a member's role: owners alone touch ``owner``; the last owner stays."""
    assert req.role is not None
    return members.change_role(
        req.work, req.path["workspace_id"], req.path["user_id"], req.body, caller_role=req.role
    )


def remove_member(req: Request) -> None:
    """Remove a member: owners alone remove owners; the last owner stays."""
    assert req.role is not None
    members.remove_member(
        req.work, req.path["workspace_id"], req.path["user_id"], caller_role=req.role
    )
