"""Workspace API keys: issued with a role no higher than their creator's, shown once, revoked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from generated import models
from server.domain import roles
from server.domain.errors import Forbidden, NotFound
from server.domain.listing import Window, listed
from server.domain.unit import UnitOfWork
from server.domain.values import optional_datetime, text, unique
from server.security import hash_secret, mint_secret, new_id, secret_prefix
from server.storage import rows
from server.storage.models import ApiKey


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A new key and its secret, which is not stored anywhere and is shown only now."""

    key: ApiKey
    secret: str


def list_keys(
    uow: UnitOfWork, workspace_id: str, *, status: str | None, window: Window
) -> tuple[Sequence[ApiKey], int | None]:
    """The workspace's keys (active and revoked) in ``window``, and their count if asked."""
    return listed(uow, ApiKey, window, workspace_id=workspace_id, status=status)


def issue_key(
    uow: UnitOfWork, workspace_id: str, request: models.ApiKeyCreate, *, creator_role: str
) -> IssuedKey:
    """Issue a key acting in ``workspace_id`` with a role no higher than its creator's."""
    role = text(request.role)
    if not roles.at_least(creator_role, role):
        raise Forbidden(
            f"An API key cannot have a role above your own ({creator_role}).",
            code="insufficient_role",
        )
    secret = mint_secret("sk_")
    key = rows.add(
        uow.db,
        ApiKey(
            id=new_id("key_"),
            workspace_id=workspace_id,
            name=text(request.name),
            prefix=secret_prefix(secret),
            key_hash=hash_secret(secret),
            role=role,
            scopes=unique(request.scopes),
            status="active",
            expires_at=optional_datetime(request.expires_at, "body.expires_at"),
            last_used_at=None,
            created_by=uow.actor.actor_id or "system",
            created_at=uow.now,
            revoked_at=None,
        ),
    )
    uow.audit(
        "api_key.created",
        workspace_id=workspace_id,
        target_type="api_key",
        target_id=key.id,
        summary=f"{uow.actor.label} created API key {key.name!r} ({role})",
        metadata={
            "name": key.name,
            "role": role,
            "scopes": key.scopes,
            "prefix": key.prefix,
            "expires_at": key.expires_at,
        },
    )
    return IssuedKey(key, secret)


def revoke_key(uow: UnitOfWork, workspace_id: str, key_id: str) -> ApiKey:
    """Revoke an active key of this workspace; a revoked or unknown key is not found."""
    key = rows.get(uow.db, ApiKey, key_id, workspace_id=workspace_id)
    if key is None or key.status != "active":
        raise NotFound("API key not found.")
    key.status = "revoked"
    key.revoked_at = uow.now
    uow.audit(
        "api_key.revoked",
        workspace_id=workspace_id,
        target_type="api_key",
        target_id=key.id,
        summary=f"{uow.actor.label} revoked API key {key.name!r}",
        metadata={"name": key.name, "prefix": key.prefix},
    )
    return key
