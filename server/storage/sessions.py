"""Browser sessions: the cookie value is shown to the client once and stored only as SHA-256."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from server import vocabulary
from server.security import hash_secret, mint_secret, new_id
from server.storage.models import User, UserSession
from server.storage.types import utcnow

__all__ = [
    "SESSION_ABSOLUTE_TTL",
    "SESSION_IDLE_TTL",
    "SESSION_TOUCH_INTERVAL",
    "create_session",
    "delete_session",
    "delete_user_sessions",
    "get_active_session",
    "purge_expired_sessions",
    "touch_session",
]

# The lifetimes the cookie security scheme declares (``x-gantry-session``): sliding, absolute.
SESSION_IDLE_TTL = vocabulary.SESSION_IDLE_TTL
SESSION_ABSOLUTE_TTL = vocabulary.SESSION_ABSOLUTE_TTL
# The sliding expiry is written back at most this often per session, not on every request.
SESSION_TOUCH_INTERVAL = timedelta(seconds=60)


def create_session(
    session: Session, user_id: str, *, now: datetime | None = None
) -> tuple[UserSession, str]:
    """Start a session for ``user_id``. Returns the row and the plain cookie value (``ses_`` +
    40 base62); the value is not stored and cannot be recovered later."""
    now = now or utcnow()
    cookie = mint_secret("ses_")
    row = UserSession(
        id=new_id("ses_"),
        user_id=user_id,
        token_hash=hash_secret(cookie),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_IDLE_TTL,
        absolute_expires_at=now + SESSION_ABSOLUTE_TTL,
    )
    session.add(row)
    session.flush()
    return row, cookie


def get_active_session(
    session: Session, cookie_value: str, *, now: datetime | None = None
) -> tuple[UserSession, User] | None:
    """The unexpired session for a cookie value and its user (one query), else ``None``.

    Slides the idle expiry (``now + 12 h``, never past the 7-day absolute expiry), writing it
    back at most once per ``SESSION_TOUCH_INTERVAL``. The user's ``status`` is not checked here.
    """
    now = now or utcnow()
    row = session.execute(
        select(UserSession, User)
        .join(User, User.id == UserSession.user_id)
        .where(UserSession.token_hash == hash_secret(cookie_value))
    ).first()
    if row is None:
        return None
    user_session, user = row._tuple()
    if user_session.expires_at <= now or user_session.absolute_expires_at <= now:
        return None
    if now - user_session.last_seen_at >= SESSION_TOUCH_INTERVAL:
        user_session.last_seen_at = now
        user_session.expires_at = min(now + SESSION_IDLE_TTL, user_session.absolute_expires_at)
        session.flush()
    return user_session, user


def delete_session(session: Session, session_id: str) -> bool:
    result = session.execute(delete(UserSession).where(UserSession.id == session_id))
    return bool(getattr(result, "rowcount", 0))


def delete_user_sessions(
    session: Session, user_id: str, *, except_session_id: str | None = None
) -> int:
    """End every session of a user (password change, block), optionally keeping one."""
    stmt = delete(UserSession).where(UserSession.user_id == user_id)
    if except_session_id is not None:
        stmt = stmt.where(UserSession.id != except_session_id)
    result = session.execute(stmt)
    return int(getattr(result, "rowcount", 0))


def purge_expired_sessions(session: Session, *, now: datetime | None = None) -> int:
    """Delete sessions past their idle expiry (housekeeping; always <= absolute expiry)."""
    result = session.execute(delete(UserSession).where(UserSession.expires_at <= (now or utcnow())))
    return int(getattr(result, "rowcount", 0))


def touch_session(session: Session, session_id: str, *, now: datetime | None = None) -> None:
    """Slide the idle expiry (never past the absolute one); a no-op within
    ``SESSION_TOUCH_INTERVAL`` of the last slide, or when the session is gone."""
    now = now or utcnow()
    row = session.execute(
        select(UserSession.absolute_expires_at).where(
            UserSession.id == session_id,
            UserSession.last_seen_at <= now - SESSION_TOUCH_INTERVAL,
        )
    ).first()
    if row is None:
        return
    session.execute(
        update(UserSession)
        .where(UserSession.id == session_id)
        .values(last_seen_at=now, expires_at=min(now + SESSION_IDLE_TTL, row[0]))
    )


def get_session_by_hash(session: Session, token_hash: str) -> UserSession | None:
    """The session whose cookie hashes to ``token_hash``, whatever its expiry."""
    return session.scalars(select(UserSession).where(UserSession.token_hash == token_hash)).first()
