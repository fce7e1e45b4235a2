"""Credentials: a presented secret turned into the ``Principal`` it identifies, or refused.

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

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from server.domain.actors import Principal
from server.domain.errors import NotAuthenticated
from server.security import hash_secret
from server.storage import rows
from server.storage.models import ApiKey, PersonalAccessToken, User
from server.storage.sessions import get_session_by_hash, touch_session
from server.storage.users import get_user
from server.storage.workspaces import get_member_role

log = logging.getLogger("gantry")
Stamp = Callable[[Session], None]
_STAMPS = "gantry.deferred_stamps"

# How often a credential's use is stamped: the one interval, for every kind.
STAMP_EVERY = timedelta(minutes=1)


def _stamp_due(last: datetime | None, now: datetime) -> bool:
    return last is None or now - last >= STAMP_EVERY


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
    user = get_user(db, user_id)
    if user is None:
        raise NotAuthenticated("The credential's user no longer exists.")
    if user.status != "active":
        raise NotAuthenticated("This account is blocked.")
    return user


class StorageCredentials:
    """``CredentialStore`` over the SQL tables."""

    def by_bearer(self, db: Session, secret: str, now: datetime) -> Principal:
        """A ``pat_…`` or ``sk_…`` bearer token; 401 when unknown, expired or revoked."""
        if secret.startswith("pat_"):
            return self._pat(db, secret, now)
        if secret.startswith("sk_"):
            return self._api_key(db, secret, now)
        raise NotAuthenticated("Unrecognised token; expected a pat_ or sk_ token.")

    def _pat(self, db: Session, secret: str, now: datetime) -> Principal:
        token = rows.find(db, PersonalAccessToken, token_hash=hash_secret(secret))
        if token is None:
            raise NotAuthenticated("Unknown token.")
        if token.status != "active":
            raise NotAuthenticated("This token has been revoked.", code="token_revoked")
        if token.expires_at <= now:
            raise NotAuthenticated("This token has expired.", code="token_expired")
        user = _active_user(db, token.user_id)
        if _stamp_due(token.last_used_at, now):
            token_id = token.id
            _defer(
                db,
                lambda s: rows.touch(s, PersonalAccessToken, token_id, now=now, every=STAMP_EVERY),
            )
        return Principal(
            kind="pat",
            credential_id=token.id,
            label=user.email,
            user_id=user.id,
            is_superadmin=user.is_superadmin,
            scopes=frozenset(token.scopes),
        )

    def _api_key(self, db: Session, secret: str, now: datetime) -> Principal:
        key = rows.find(db, ApiKey, key_hash=hash_secret(secret))
        if key is None:
            raise NotAuthenticated("Unknown API key.")
        if key.status != "active":
            raise NotAuthenticated("This API key has been revoked.", code="token_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise NotAuthenticated("This API key has expired.", code="token_expired")
        if _stamp_due(key.last_used_at, now):
            key_id = key.id
            _defer(db, lambda s: rows.touch(s, ApiKey, key_id, now=now, every=STAMP_EVERY))
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
        session = get_session_by_hash(db, hash_secret(value))
        if session is None:
            raise NotAuthenticated("Your session is not valid; sign in again.")
        if session.expires_at <= now or session.absolute_expires_at <= now:
            raise NotAuthenticated("Your session has expired; sign in again.", code="token_expired")
        user = _active_user(db, session.user_id)
        if _stamp_due(session.last_seen_at, now):
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
        return get_member_role(db, workspace_id, user_id)
