"""api_keys: workspace API keys, acting in one workspace with a fixed role."""

from __future__ import annotations

from typing import Any

from server.domain import api_keys
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request
from server.runtime.present import Overlay


def list_api_keys(req: Request) -> dict[str, Any]:
    """The workspace's keys (metadata only), active and revoked."""
    assert req.page is not None
    found, total = api_keys.list_keys(
        req.work, req.path["workspace_id"], status=req.query.get("status"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_api_key(req: Request) -> Reply:
    """Issue a key with a role no higher than the creator's; the secret is shown once."""
    assert req.role is not None
    workspace_id = req.path["workspace_id"]
    issued = api_keys.issue_key(req.work, workspace_id, req.body, creator_role=req.role)
    return Reply(
        Overlay(issued.key, key=issued.secret),
        status=201,
        headers={"Location": f"{API_BASE}/workspaces/{workspace_id}/api-keys/{issued.key.id}"},
    )


def revoke_api_key(req: Request) -> None:
    """Revoke a key of this workspace; a second revoke is 404."""
    api_keys.revoke_key(req.work, req.path["workspace_id"], req.path["key_id"])
