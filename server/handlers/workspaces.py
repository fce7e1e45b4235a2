"""workspaces: the unit of tenancy; the creator becomes the first owner."""

from __future__ import annotations

from typing import Any

from server.domain import workspaces
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request
from server.runtime.present import Overlay


def list_workspaces(req: Request) -> dict[str, Any]:
    """The caller's workspaces, each with the caller's role; an API key sees its one workspace."""
    assert req.page is not None and req.principal is not None
    found, total = workspaces.list_workspaces(req.work, caller=req.principal, window=req.page)
    return req.page.respond([Overlay(ws, role=role) for ws, role in found], total=total)


def create_workspace(req: Request) -> Reply:
    """Create a workspace owned by the caller; 409 ``already_exists`` for a taken slug."""
    assert req.principal is not None
    ws, role = workspaces.create_workspace(req.work, req.body, creator=req.principal)
    return Reply(
        Overlay(ws, role=role), status=201, headers={"Location": f"{API_BASE}/workspaces/{ws.id}"}
    )


def get_workspace(req: Request) -> Overlay:
    """The workspace with the caller's role in it."""
    return Overlay(workspaces.get_workspace(req.work, req.path["workspace_id"]), role=req.role)


def update_workspace(req: Request) -> Overlay:
    """Change name, slug or settings (merged field by field)."""
    ws = workspaces.update_workspace(req.work, req.path["workspace_id"], req.body)
    return Overlay(ws, role=req.role)


def delete_workspace(req: Request) -> None:
    """Delete the workspace with its members and API keys; its audit events stay."""
    workspaces.delete_workspace(req.work, req.path["workspace_id"])
