"""Storage rows → response bodies, shaped exactly like the spec's component schemas.

Datetimes stay ``datetime``; the dispatcher renders them as RFC 3339 with ``Z``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from server.storage.models import (
    ApiKey,
    AuditEvent,
    Membership,
    PersonalAccessToken,
    User,
    Workspace,
)

DEFAULT_SETTINGS: Mapping[str, Any] = {"default_env": "production", "max_members": 100}

# Limits of the AuditEvent schema, applied on output so old rows never break the contract.
_SUMMARY_MAX = 500
_USER_AGENT_MAX = 512
_LABEL_MAX = 300
_IP_MAX = 45


def user(row: User) -> dict[str, Any]:
    """``User``."""
    return {
        "id": row.id,
        "email": row.email,
        "name": row.name,
        "is_superadmin": bool(row.is_superadmin),
        "status": row.status,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def user_ref(row: User) -> dict[str, Any]:
    """``UserRef``: the public face of a user."""
    return {"id": row.id, "name": row.name}


def token(row: PersonalAccessToken) -> dict[str, Any]:
    """``Token`` (metadata only, never the secret)."""
    return {
        "id": row.id,
        "name": row.name,
        "scopes": list(row.scopes),
        "prefix": row.prefix,
        "status": row.status,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "created_at": row.created_at,
    }


def settings(stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """``WorkspaceSettings``: the stored document over the defaults, known keys only."""
    merged = dict(DEFAULT_SETTINGS)
    for name in DEFAULT_SETTINGS:
        if stored and stored.get(name) is not None:
            merged[name] = stored[name]
    return merged


def workspace(row: Workspace, role: str) -> dict[str, Any]:
    """``Workspace`` with the caller's role in it."""
    return {
        "id": row.id,
        "name": row.name,
        "slug": row.slug,
        "settings": settings(row.settings),
        "role": role,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


def member(membership: Membership, member_user: User) -> dict[str, Any]:
    """``Member``."""
    return {
        "workspace_id": membership.workspace_id,
        "user_id": membership.user_id,
        "email": member_user.email,
        "name": member_user.name,
        "role": membership.role,
        "created_at": membership.created_at,
        "updated_at": membership.updated_at,
    }


def api_key(row: ApiKey) -> dict[str, Any]:
    """``ApiKey`` (metadata only, never the secret)."""
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "name": row.name,
        "prefix": row.prefix,
        "role": row.role,
        "scopes": list(row.scopes),
        "status": row.status,
        "expires_at": row.expires_at,
        "last_used_at": row.last_used_at,
        "created_by": row.created_by,
        "created_at": row.created_at,
    }


def audit_event(row: AuditEvent) -> dict[str, Any]:
    """``AuditEvent``: actor and target as objects, ``metadata`` from ``metadata_``."""
    return {
        "id": row.id,
        "workspace_id": row.workspace_id,
        "actor": {
            "type": row.actor_type,
            "id": row.actor_id,
            "label": (row.actor_label or "")[:_LABEL_MAX],
        },
        "action": row.action,
        "target": {"type": row.target_type or "", "id": row.target_id or ""},
        "summary": (row.summary or "")[:_SUMMARY_MAX],
        "metadata": dict(row.metadata_ or {}),
        "ip": row.ip[:_IP_MAX] if row.ip else None,
        "user_agent": row.user_agent[:_USER_AGENT_MAX] if row.user_agent else None,
        "request_id": row.request_id or "",
        "created_at": row.created_at,
    }
