"""``GANTRY_BOOTSTRAP_TOKEN``: on an empty database, create a superadmin who owns that token.

This lets scripts and CI drive a fresh server without a registration step. The token must be a
well-formed personal access token (``pat_`` + 40 base62 characters); it gets every scope and
lives for a year. On a database that already has users nothing happens.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from server.security import hash_secret, new_id, secret_prefix
from server.state import AppState
from server.storage.models import AuditEvent, PersonalAccessToken, User

BOOTSTRAP_EMAIL = "admin@gantry.local"
ALL_SCOPES = ["admin", "gateway", "read", "run", "write"]
_TOKEN = re.compile(r"pat_[0-9A-Za-z]{40}")
log = logging.getLogger("gantry.bootstrap")


class BootstrapError(ValueError):
    """The bootstrap token is malformed."""


def bootstrap(state: AppState) -> None:
    """Create the bootstrap superadmin and token if configured and the database is empty."""
    token = state.config.bootstrap_token
    if not token:
        return
    if not _TOKEN.fullmatch(token):
        raise BootstrapError(
            "GANTRY_BOOTSTRAP_TOKEN must be 'pat_' followed by 40 letters or digits."
        )
    now = datetime.now(UTC)
    session = state.database.sessionmaker()
    try:
        if session.scalar(select(func.count()).select_from(User)):
            return
        user = User(
            id=new_id("usr_"),
            email=BOOTSTRAP_EMAIL,
            name="Bootstrap Admin",
            password_hash=None,
            is_superadmin=True,
            status="active",
            created_at=now,
            updated_at=now,
        )
        pat = PersonalAccessToken(
            id=new_id("tok_"),
            user_id=user.id,
            name="bootstrap",
            scopes=ALL_SCOPES,
            prefix=secret_prefix(token),
            token_hash=hash_secret(token),
            status="active",
            expires_at=now + timedelta(days=365),
            last_used_at=None,
            created_at=now,
            revoked_at=None,
        )
        event = AuditEvent(
            id=new_id("aud_"),
            workspace_id=None,
            actor_type="system",
            actor_id=None,
            actor_label="bootstrap",
            action="user.created",
            target_type="user",
            target_id=user.id,
            summary=f"Bootstrap superadmin {BOOTSTRAP_EMAIL} created",
            metadata_={"source": "GANTRY_BOOTSTRAP_TOKEN"},
            ip=None,
            user_agent=None,
            request_id=None,
            created_at=now,
        )
        session.add(user)
        session.flush()
        session.add_all([pat, event])
        session.commit()
        log.info("created bootstrap superadmin %s", BOOTSTRAP_EMAIL)
    except IntegrityError:
        # Another worker bootstrapped the same empty database first.
        session.rollback()
    finally:
        session.close()
