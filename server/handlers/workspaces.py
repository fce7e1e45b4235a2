"""workspaces: the unit of tenancy; the creator becomes the first owner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import (
    API_BASE,
    body_fields,
    effective_role,
    plain,
    record,
    sent_fields,
    unique_or_conflict,
)
from server.runtime.context import Reply, Request
from server.runtime.errors import Conflict, NotFound
from server.storage import repositories as repo
from server.storage.models import Workspace

_SLUG_TAKEN = "A workspace with this slug already exists."


def _key(row: tuple[Workspace, str]) -> tuple[datetime, str]:
    return row[0].created_at, row[0].id


def _after(key: tuple[datetime, str], after: tuple[datetime, str], order: str) -> bool:
    return key < after if order == "desc" else key > after


def list_workspaces(req: Request) -> dict[str, Any]:
    """The caller's workspaces; an API key sees its one workspace."""
    page = req.page
    principal = req.principal
    assert page is not None and principal is not None
    db = req.db
    if principal.kind == "api_key":
        assert principal.workspace_id is not None and principal.key_role is not None
        ws = repo.get_workspace(db, principal.workspace_id)
        rows: list[tuple[Workspace, str]] = []
        if ws is not None and (
            page.after is None or _after((ws.created_at, ws.id), page.after, page.order)
        ):
            rows.append((ws, principal.key_role))
        total = (1 if ws is not None else 0) if page.include_total else None
        return page.respond(rows, _serialize_row, key=_key, total=total)
    user_id = req.user_id
    found = repo.list_workspaces_for_user(
        db,
        user_id,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
    )
    pairs = [(ws, effective_role(principal, role)) for ws, role in found]
    total = repo.count_workspaces_for_user(db, user_id) if page.include_total else None
    return page.respond(pairs, _serialize_row, key=_key, total=total)


def _serialize_row(row: tuple[Workspace, str]) -> dict[str, Any]:
    return ser.workspace(row[0], row[1])


def create_workspace(req: Request) -> Reply:
    """Create a workspace owned by the caller; 409 ``already_exists`` for a taken slug."""
    principal = req.principal
    assert principal is not None
    data, _ = body_fields(req)
    db = req.db
    slug = str(data["slug"])
    if repo.get_workspace_by_slug(db, slug) is not None:
        raise Conflict(_SLUG_TAKEN, code="already_exists")
    with unique_or_conflict(_SLUG_TAKEN):
        ws = repo.create_workspace(
            db,
            name=str(data["name"]),
            slug=slug,
            owner_id=req.user_id,
            settings=dict(ser.DEFAULT_SETTINGS),
        )
    record(
        req,
        "workspace.created",
        workspace_id=ws.id,
        target_type="workspace",
        target_id=ws.id,
        summary=f"{principal.label} created workspace {ws.slug}",
        metadata={"name": ws.name, "slug": ws.slug},
    )
    return Reply(
        ser.workspace(ws, effective_role(principal, "owner")),
        status=201,
        headers={"Location": f"{API_BASE}/workspaces/{ws.id}"},
    )


def _workspace(req: Request) -> Workspace:
    ws = repo.get_workspace(req.db, str(req.path["workspace_id"]))
    if ws is None:
        raise NotFound("Workspace not found.")
    return ws


def get_workspace(req: Request) -> dict[str, Any]:
    """The workspace with the caller's role in it."""
    assert req.role is not None
    return ser.workspace(_workspace(req), req.role)


def update_workspace(req: Request) -> dict[str, Any]:
    """Change name, slug or settings (merged field by field)."""
    assert req.role is not None and req.principal is not None
    ws = _workspace(req)
    db = req.db
    data, sent = body_fields(req)
    changes: dict[str, Any] = {}
    diff: dict[str, Any] = {}
    if "name" in sent and data.get("name") is not None and data["name"] != ws.name:
        changes["name"] = str(data["name"])
        diff["name"] = {"from": ws.name, "to": changes["name"]}
    if "slug" in sent and data.get("slug") is not None and data["slug"] != ws.slug:
        slug = str(data["slug"])
        if repo.get_workspace_by_slug(db, slug) is not None:
            raise Conflict(_SLUG_TAKEN, code="already_exists")
        changes["slug"] = slug
        diff["slug"] = {"from": ws.slug, "to": slug}
    if "settings" in sent and data.get("settings") is not None:
        current = ser.settings(ws.settings)
        given = sent_fields(getattr(req.body, "settings", None)) or frozenset(data["settings"])
        merged = dict(current)
        for name, value in plain(data["settings"]).items():
            if name in given and name in ser.DEFAULT_SETTINGS and value is not None:
                merged[name] = value
        if merged != current:
            members = repo.count_members(db, ws.id)
            if int(merged["max_members"]) < members:
                raise Conflict(
                    f"max_members cannot be below the current number of members ({members}).",
                    code="conflict",
                )
            changes["settings"] = merged
            diff["settings"] = {
                k: {"from": current[k], "to": merged[k]} for k in merged if merged[k] != current[k]
            }
    if changes:
        with unique_or_conflict(_SLUG_TAKEN):
            repo.update_workspace(db, ws, **changes)
        record(
            req,
            "workspace.updated",
            workspace_id=ws.id,
            target_type="workspace",
            target_id=ws.id,
            summary=f"{req.principal.label} updated workspace {ws.slug} ({', '.join(sorted(diff))})",
            metadata={"changes": diff},
        )
    return ser.workspace(ws, req.role)


def delete_workspace(req: Request) -> None:
    """Delete the workspace with its members and API keys; its audit events stay."""
    assert req.principal is not None
    ws = _workspace(req)
    record(
        req,
        "workspace.deleted",
        workspace_id=ws.id,
        target_type="workspace",
        target_id=ws.id,
        summary=f"{req.principal.label} deleted workspace {ws.slug}",
        metadata={"name": ws.name, "slug": ws.slug},
    )
    repo.delete_workspace(req.db, ws.id)
