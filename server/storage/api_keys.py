"""Workspace API keys (``sk_`` + 40 base62), stored as SHA-256."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import Session

from server.security import hash_secret, mint_secret, new_id, secret_prefix
from server.storage.common import Cursor, Order, apply_keyset
from server.storage.models import ApiKey
from server.storage.tokens import LAST_USED_INTERVAL
from server.storage.types import utcnow

__all__ = [
    "count_api_keys",
    "create_api_key",
    "get_api_key",
    "get_api_key_by_hash",
    "list_api_keys",
    "revoke_api_key",
    "touch_api_key",
]


def create_api_key(
    session: Session,
    *,
    workspace_id: str,
    name: str,
    role: str,
    scopes: Sequence[str],
    created_by: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Issue a key. Returns the row and the plain key, which is not stored anywhere.

    The caller enforces "never above the creator's role"; the table only accepts roles
    viewer/operator/editor/admin.
    """
    now = now or utcnow()
    secret = mint_secret("sk_")
    row = ApiKey(
        id=new_id("key_"),
        workspace_id=workspace_id,
        name=name,
        prefix=secret_prefix(secret),
        key_hash=hash_secret(secret),
        role=role,
        scopes=list(scopes),
        status="active",
        expires_at=expires_at,
        last_used_at=None,
        created_by=created_by,
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return row, secret


def get_api_key(session: Session, workspace_id: str, key_id: str) -> ApiKey | None:
    """A key of this workspace (any status); a key of another workspace is ``None``."""
    return session.scalars(
        select(ApiKey).where(ApiKey.id == key_id, ApiKey.workspace_id == workspace_id)
    ).first()


def get_api_key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    """Look a key up by ``hash_secret(value)``, whatever its status or expiry."""
    return session.scalars(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def _key_filters(workspace_id: str, status: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [ApiKey.workspace_id == workspace_id]
    if status is not None:
        filters.append(ApiKey.status == status)
    return filters


def list_api_keys(
    session: Session,
    workspace_id: str,
    *,
    status: str | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[ApiKey]:
    """A workspace's keys, keyset on ``(created_at, id)``; up to ``limit + 1`` rows."""
    stmt: Select[tuple[ApiKey]] = select(ApiKey).where(*_key_filters(workspace_id, status))
    return session.scalars(
        apply_keyset(stmt, ApiKey.created_at, ApiKey.id, after=after, order=order, limit=limit)
    ).all()


def count_api_keys(session: Session, workspace_id: str, *, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(ApiKey).where(*_key_filters(workspace_id, status))
    return session.scalar(stmt) or 0


def revoke_api_key(
    session: Session, workspace_id: str, key_id: str, *, now: datetime | None = None
) -> ApiKey | None:
    """Revoke an active key; ``None`` if missing, in another workspace or already revoked."""
    key = session.scalars(
        select(ApiKey).where(
            ApiKey.id == key_id, ApiKey.workspace_id == workspace_id, ApiKey.status == "active"
        )
    ).first()
    if key is None:
        return None
    key.status = "revoked"
    key.revoked_at = now or utcnow()
    session.flush()
    return key


def touch_api_key(session: Session, key_id: str, *, now: datetime | None = None) -> None:
    """Record use; a no-op if ``last_used_at`` is younger than ``LAST_USED_INTERVAL``."""
    now = now or utcnow()
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_INTERVAL),
        )
        .values(last_used_at=now)
    )
