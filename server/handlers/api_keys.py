"""api_keys: workspace API keys, acting in one workspace with a fixed role."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import API_BASE, as_datetime, body_fields, now, record
from server.runtime import roles
from server.runtime.context import Reply, Request
from server.runtime.errors import Forbidden, NotFound
from server.storage import repositories as repo
from server.storage.models import ApiKey

DEFAULT_ROLE = "operator"


def _key(row: ApiKey) -> tuple[datetime, str]:
    return row.created_at, row.id


def list_api_keys(req: Request) -> dict[str, Any]:
    """The workspace's keys (metadata only), active and revoked."""
    page = req.page
    assert page is not None
    workspace_id = str(req.path["workspace_id"])
    status = req.query.get("status")
    status_filter = str(status) if status is not None else None
    rows = repo.list_api_keys(
        req.db,
        workspace_id,
        status=status_filter,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
    )
    total = (
        repo.count_api_keys(req.db, workspace_id, status=status_filter)
        if page.include_total
        else None
    )
    return page.respond(rows, ser.api_key, key=_key, total=total)


def create_api_key(req: Request) -> Reply:
    """Issue a key with a role no higher than the creator's; the secret is shown once."""
    principal = req.principal
    assert principal is not None and req.role is not None
    workspace_id = str(req.path["workspace_id"])
    data, _ = body_fields(req)
    role = str(data.get("role") or DEFAULT_ROLE)
    if not roles.at_least(req.role, role):
        raise Forbidden(
            f"An API key cannot have a role above your own ({req.role}).",
            code="insufficient_role",
        )
    current = now()
    expires_at = (
        as_datetime(data["expires_at"], "body.expires_at")
        if data.get("expires_at") is not None
        else None
    )
    scopes = list(dict.fromkeys(str(s) for s in (data.get("scopes") or [])))
    row, secret = repo.create_api_key(
        req.db,
        workspace_id=workspace_id,
        name=str(data["name"]),
        role=role,
        scopes=scopes,
        created_by=principal.actor_id,
        expires_at=expires_at,
        now=current,
    )
    record(
        req,
        "api_key.created",
        workspace_id=workspace_id,
        target_type="api_key",
        target_id=row.id,
        summary=f"{principal.label} created API key {row.name!r} ({role})",
        metadata={
            "name": row.name,
            "role": role,
            "scopes": scopes,
            "prefix": row.prefix,
            "expires_at": expires_at,
        },
    )
    body = ser.api_key(row)
    body["key"] = secret
    return Reply(
        body,
        status=201,
        headers={"Location": f"{API_BASE}/workspaces/{workspace_id}/api-keys/{row.id}"},
    )


def revoke_api_key(req: Request) -> None:
    """Revoke a key of this workspace; a second revoke is 404."""
    assert req.principal is not None
    workspace_id = str(req.path["workspace_id"])
    row = repo.revoke_api_key(req.db, workspace_id, str(req.path["key_id"]))
    if row is None:
        raise NotFound("API key not found.")
    record(
        req,
        "api_key.revoked",
        workspace_id=workspace_id,
        target_type="api_key",
        target_id=row.id,
        summary=f"{req.principal.label} revoked API key {row.name!r}",
        metadata={"name": row.name, "prefix": row.prefix},
    )
