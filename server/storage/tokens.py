"""Personal access tokens (``pat_`` + 40 base62), stored as SHA-256."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Select, func, or_, select, update
from sqlalchemy.orm import Session

from server.security import hash_secret, mint_secret, new_id, secret_prefix
from server.storage.common import UNSET, Cursor, Order, Unset, apply_keyset
from server.storage.models import PersonalAccessToken
from server.storage.types import utcnow

__all__ = [
    "LAST_USED_INTERVAL",
    "count_pats",
    "create_pat",
    "get_pat",
    "get_pat_by_hash",
    "list_pats",
    "revoke_pat",
    "touch_pat",
    "update_pat",
]

# ``last_used_at`` is written at most this often per credential (also used by API keys).
LAST_USED_INTERVAL = timedelta(seconds=60)

PAT = PersonalAccessToken


def create_pat(
    session: Session,
    *,
    user_id: str,
    name: str,
    scopes: Sequence[str],
    expires_at: datetime,
    now: datetime | None = None,
    secret: str | None = None,
) -> tuple[PersonalAccessToken, str]:
    """Issue a PAT. Returns the row and the plain token, which is not stored anywhere: a fresh
    one, or ``secret`` when the operator chose it (the bootstrap token)."""
    now = now or utcnow()
    secret = secret or mint_secret("pat_")
    row = PAT(
        id=new_id("tok_"),
        user_id=user_id,
        name=name,
        scopes=list(scopes),
        prefix=secret_prefix(secret),
        token_hash=hash_secret(secret),
        status="active",
        expires_at=expires_at,
        last_used_at=None,
        created_at=now,
        revoked_at=None,
    )
    session.add(row)
    session.flush()
    return row, secret


def get_pat(session: Session, user_id: str, token_id: str) -> PersonalAccessToken | None:
    """A token of ``user_id`` (any status); another user's token is ``None`` (404)."""
    return session.scalars(select(PAT).where(PAT.id == token_id, PAT.user_id == user_id)).first()


def get_pat_by_hash(session: Session, token_hash: str) -> PersonalAccessToken | None:
    """Look a token up by ``hash_secret(value)``, whatever its status or expiry (the caller
    tells ``token_revoked`` and ``token_expired`` apart)."""
    return session.scalars(select(PAT).where(PAT.token_hash == token_hash)).first()


def _pat_filters(user_id: str, status: str | None) -> list[ColumnElement[bool]]:
    filters: list[ColumnElement[bool]] = [PAT.user_id == user_id]
    if status is not None:
        filters.append(PAT.status == status)
    return filters


def list_pats(
    session: Session,
    user_id: str,
    *,
    status: str | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[PersonalAccessToken]:
    """A user's tokens, keyset on ``(created_at, id)``; up to ``limit + 1`` rows."""
    stmt: Select[tuple[PersonalAccessToken]] = select(PAT).where(*_pat_filters(user_id, status))
    return session.scalars(
        apply_keyset(stmt, PAT.created_at, PAT.id, after=after, order=order, limit=limit)
    ).all()


def count_pats(session: Session, user_id: str, *, status: str | None = None) -> int:
    stmt = select(func.count()).select_from(PAT).where(*_pat_filters(user_id, status))
    return session.scalar(stmt) or 0


def update_pat(
    session: Session, pat: PersonalAccessToken, *, name: str | Unset = UNSET
) -> PersonalAccessToken:
    if not isinstance(name, Unset):
        pat.name = name
    session.flush()
    return pat


def revoke_pat(
    session: Session, user_id: str, token_id: str, *, now: datetime | None = None
) -> PersonalAccessToken | None:
    """Revoke an active token of ``user_id``; ``None`` if missing, foreign or already revoked
    (a second revoke is a 404)."""
    pat = session.scalars(
        select(PAT).where(PAT.id == token_id, PAT.user_id == user_id, PAT.status == "active")
    ).first()
    if pat is None:
        return None
    pat.status = "revoked"
    pat.revoked_at = now or utcnow()
    session.flush()
    return pat


def touch_pat(session: Session, token_id: str, *, now: datetime | None = None) -> None:
    """Record use; a no-op if ``last_used_at`` is younger than ``LAST_USED_INTERVAL``."""
    now = now or utcnow()
    session.execute(
        update(PAT)
        .where(
            PAT.id == token_id,
            or_(PAT.last_used_at.is_(None), PAT.last_used_at <= now - LAST_USED_INTERVAL),
        )
        .values(last_used_at=now)
    )
