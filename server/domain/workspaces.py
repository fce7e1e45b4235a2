"""Workspaces, the unit of tenancy: unique slugs, a creator who becomes the first owner, and
settings that change field by field."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from types import MappingProxyType
from typing import Any

from sqlalchemy.exc import IntegrityError

import generated
from generated import models
from server.domain import roles
from server.domain.actors import Principal
from server.domain.errors import Conflict, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import plain, text
from server.storage import workspaces as rows
from server.storage.models import Workspace

SLUG_TAKEN = "A workspace with this slug already exists."


def _settings_defaults() -> Mapping[str, Any]:
    schemas = resources.files(generated).joinpath("schemas.json").read_text(encoding="utf-8")
    properties = json.loads(schemas)["components"]["schemas"]["WorkspaceSettings"]["properties"]
    return MappingProxyType({name: spec["default"] for name, spec in properties.items()})


# Every setting with the default the spec documents (WorkspaceSettings' ``default``s).
SETTINGS_DEFAULTS: Mapping[str, Any] = _settings_defaults()


def settings_of(workspace: Workspace) -> dict[str, Any]:
    """The workspace's settings: what is stored over the defaults, known settings only."""
    stored: Mapping[str, Any] = workspace.settings or {}
    return {
        name: default if stored.get(name) is None else stored[name]
        for name, default in SETTINGS_DEFAULTS.items()
    }


def acting_role(caller: Principal, member_role: str) -> str:
    """The role ``caller`` acts with as a ``member_role``: a token's scopes cap it."""
    if caller.kind == "pat":
        cap = roles.scope_cap(caller.scopes)
        if cap is not None:
            return roles.lower(member_role, cap)
    return member_role


def list_workspaces(
    uow: UnitOfWork, *, caller: Principal, window: Window
) -> tuple[Sequence[tuple[Workspace, str]], int | None]:
    """The caller's workspaces in ``window``, each with the role the caller acts with in it,
    and their count if asked. An API key has one workspace, in which it acts with its role."""
    if caller.kind == "api_key":
        assert caller.workspace_id is not None and caller.key_role is not None
        found = rows.get_workspace(uow.db, caller.workspace_id)
        total = (1 if found is not None else 0) if window.include_total else None
        if found is None or not _in_window((found.created_at, found.id), window):
            return [], total
        return [(found, caller.key_role)], total
    assert caller.user_id is not None
    pairs = rows.list_workspaces_for_user(
        uow.db, caller.user_id, after=window.after, order=window.direction, limit=window.limit
    )
    total = rows.count_workspaces_for_user(uow.db, caller.user_id) if window.include_total else None
    return [(ws, acting_role(caller, role)) for ws, role in pairs], total


def _in_window(key: tuple[Any, str], window: Window) -> bool:
    if window.after is None:
        return True
    return key < window.after if window.direction == "desc" else key > window.after


def create_workspace(
    uow: UnitOfWork, request: models.WorkspaceCreate, *, creator: Principal
) -> tuple[Workspace, str]:
    """A workspace whose first owner is ``creator``, with the default settings; and the role
    the creator acts with in it. A taken slug is a conflict (``already_exists``)."""
    assert creator.user_id is not None
    slug = text(request.slug)
    if rows.get_workspace_by_slug(uow.db, slug) is not None:
        raise Conflict(SLUG_TAKEN, code="already_exists")
    try:
        workspace = rows.create_workspace(
            uow.db,
            name=text(request.name),
            slug=slug,
            owner_id=creator.user_id,
            settings=dict(SETTINGS_DEFAULTS),
            now=uow.now,
        )
    except IntegrityError:  # taken meanwhile by a concurrent request
        raise Conflict(SLUG_TAKEN, code="already_exists") from None
    uow.audit(
        "workspace.created",
        workspace_id=workspace.id,
        target_type="workspace",
        target_id=workspace.id,
        summary=f"{uow.actor.label} created workspace {workspace.slug}",
        metadata={"name": workspace.name, "slug": workspace.slug},
    )
    return workspace, acting_role(creator, "owner")


def get_workspace(uow: UnitOfWork, workspace_id: str) -> Workspace:
    """The workspace, or not found."""
    workspace = rows.get_workspace(uow.db, workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found.")
    return workspace


def update_workspace(
    uow: UnitOfWork, workspace_id: str, request: models.WorkspaceUpdate
) -> Workspace:
    """Change the name, the slug or settings: fields the request omits stay as they are, and
    settings merge field by field. A taken slug is a conflict (``already_exists``), and so is
    a ``max_members`` below the current number of members. Only a real change is recorded."""
    workspace = get_workspace(uow, workspace_id)
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    diff: dict[str, Any] = {}
    name = text(request.name) if "name" in sent and request.name is not None else None
    if name is not None and name != workspace.name:
        changes["name"] = name
        diff["name"] = {"from": workspace.name, "to": name}
    slug = text(request.slug) if "slug" in sent and request.slug is not None else None
    if slug is not None and slug != workspace.slug:
        if rows.get_workspace_by_slug(uow.db, slug) is not None:
            raise Conflict(SLUG_TAKEN, code="already_exists")
        changes["slug"] = slug
        diff["slug"] = {"from": workspace.slug, "to": slug}
    if "settings" in sent and request.settings is not None:
        current = settings_of(workspace)
        merged = _merged_settings(current, request.settings)
        if merged != current:
            _check_max_members(uow, workspace.id, int(merged["max_members"]))
            changes["settings"] = merged
            diff["settings"] = {
                k: {"from": current[k], "to": merged[k]} for k in merged if merged[k] != current[k]
            }
    if not changes:
        return workspace
    try:
        rows.update_workspace(uow.db, workspace, **changes, now=uow.now)
    except IntegrityError:  # the slug was taken meanwhile by a concurrent request
        raise Conflict(SLUG_TAKEN, code="already_exists") from None
    uow.audit(
        "workspace.updated",
        workspace_id=workspace.id,
        target_type="workspace",
        target_id=workspace.id,
        summary=(
            f"{uow.actor.label} updated workspace {workspace.slug} ({', '.join(sorted(diff))})"
        ),
        metadata={"changes": diff},
    )
    return workspace


def _merged_settings(
    current: Mapping[str, Any], update: models.WorkspaceSettingsUpdate
) -> dict[str, Any]:
    """``current`` with the settings ``update`` gives (omitted ones unchanged)."""
    merged = dict(current)
    for name in update.model_fields_set & SETTINGS_DEFAULTS.keys():
        value = plain(getattr(update, name))
        if value is not None:
            merged[name] = value
    return merged


def _check_max_members(uow: UnitOfWork, workspace_id: str, max_members: int) -> None:
    members = rows.count_members(uow.db, workspace_id)
    if max_members < members:
        raise Conflict(f"max_members cannot be below the current number of members ({members}).")


def delete_workspace(uow: UnitOfWork, workspace_id: str) -> None:
    """Delete the workspace with its members and API keys; its audit events stay."""
    workspace = get_workspace(uow, workspace_id)
    uow.audit(
        "workspace.deleted",
        workspace_id=workspace.id,
        target_type="workspace",
        target_id=workspace.id,
        summary=f"{uow.actor.label} deleted workspace {workspace.slug}",
        metadata={"name": workspace.name, "slug": workspace.slug},
    )
    rows.delete_workspace(uow.db, workspace.id)
