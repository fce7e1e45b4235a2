"""The storage side of authentication: turn a presented secret into a ``Principal``.

Secrets are looked up by their SHA-256 only. Usage stamps (``last_used_at``, the session's
sliding expiry) are written at most once a minute per credential, so reads stay reads, and after
the request's own transaction has committed, in a short one of their own
(``write_deferred_stamps``): a stamp then never holds a credential's row lock while the request
takes the locks of its rules, and a credential deleted meanwhile is simply not stamped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.runtime.auth import Principal
from server.runtime.errors import Unauthenticated
from server.security import hash_secret
from server.storage.api_keys import touch_api_key
from server.storage.models import ApiKey, Membership, PersonalAccessToken, User, UserSession
from server.storage.sessions import touch_session
from server.storage.tokens import touch_pat

log = logging.getLogger("gantry")
Stamp = Callable[[Session], None]
_STAMPS = "gantry.deferred_stamps"

SESSION_IDLE = timedelta(hours=12)
_TOUCH_EVERY = timedelta(minutes=1)


def _defer(db: Session, stamp: Stamp) -> None:
    db.info.setdefault(_STAMPS, []).append(stamp)


def take_deferred_stamps(db: Session) -> list[Stamp]:
    """The usage stamps authentication left on ``db`` (and forget them there)."""
    stamps: list[Stamp] = db.info.pop(_STAMPS, [])
    return stamps


def write_deferred_stamps(factory: Callable[[], Session], stamps: list[Stamp]) -> None:
    """Write usage stamps in one short transaction; a stamp is advisory, so a failure (the
    database busy, say) is logged and never fails the request that has already succeeded."""
    session = factory()
    try:
        for stamp in stamps:
            stamp(session)
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        log.warning("usage stamps not written: %s", exc.__class__.__name__)
    finally:
        session.close()


def _active_user(db: Session, user_id: str) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise Unauthenticated("The credential's user no longer exists.")
    if user.status != "active":
        raise Unauthenticated("This account is blocked.")
    return user


class StorageCredentials:
    """``CredentialStore`` over the SQL tables."""

    def by_bearer(self, db: Session, secret: str, now: datetime) -> Principal:
        """A ``pat_…`` or ``sk_…`` bearer token; 401 when unknown, expired or revoked."""
        if secret.startswith("pat_"):
            return self._pat(db, secret, now)
        if secret.startswith("sk_"):
            return self._api_key(db, secret, now)
        raise Unauthenticated("Unrecognised token; expected a pat_ or sk_ token.")

    def _pat(self, db: Session, secret: str, now: datetime) -> Principal:
        token = db.scalar(
            select(PersonalAccessToken).where(PersonalAccessToken.token_hash == hash_secret(secret))
        )
        if token is None:
            raise Unauthenticated("Unknown token.")
        if token.status != "active":
            raise Unauthenticated("This token has been revoked.", code="token_revoked")
        if token.expires_at <= now:
            raise Unauthenticated("This token has expired.", code="token_expired")
        user = _active_user(db, token.user_id)
        if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
            token_id = token.id
            _defer(db, lambda s: touch_pat(s, token_id, now=now))
        return Principal(
            kind="pat",
            credential_id=token.id,
            label=user.email,
            user_id=user.id,
            is_superadmin=user.is_superadmin,
            scopes=frozenset(token.scopes),
        )

    def _api_key(self, db: Session, secret: str, now: datetime) -> Principal:
        key = db.scalar(select(ApiKey).where(ApiKey.key_hash == hash_secret(secret)))
        if key is None:
            raise Unauthenticated("Unknown API key.")
        if key.status != "active":
            raise Unauthenticated("This API key has been revoked.", code="token_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise Unauthenticated("This API key has expired.", code="token_expired")
        if key.last_used_at is None or now - key.last_used_at > _TOUCH_EVERY:
            key_id = key.id
            _defer(db, lambda s: touch_api_key(s, key_id, now=now))
        return Principal(
            kind="api_key",
            credential_id=key.id,
            label=key.name,
            scopes=frozenset(key.scopes),
            workspace_id=key.workspace_id,
            key_role=key.role,
        )

    def by_session(self, db: Session, value: str, now: datetime) -> Principal:
        """A session cookie; 401 when unknown or expired (idle or absolute)."""
        session = db.scalar(select(UserSession).where(UserSession.token_hash == hash_secret(value)))
        if session is None:
            raise Unauthenticated("Your session is not valid; sign in again.")
        if session.expires_at <= now or session.absolute_expires_at <= now:
            raise Unauthenticated("Your session has expired; sign in again.", code="token_expired")
        user = _active_user(db, session.user_id)
        if now - session.last_seen_at > _TOUCH_EVERY:
            session_id = session.id
            _defer(db, lambda s: touch_session(s, session_id, now=now))
        return Principal(
            kind="session",
            credential_id=session.id,
            label=user.email,
            user_id=user.id,
            is_superadmin=user.is_superadmin,
        )

    def workspace_role(self, db: Session, workspace_id: str, user_id: str) -> str | None:
        """The user's role in the workspace, or None when not a member."""
        return db.scalar(
            select(Membership.role).where(
                Membership.workspace_id == workspace_id, Membership.user_id == user_id
            )
        )
