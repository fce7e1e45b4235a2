"""What a password change ends: the credentials the old password vouched for.

One rule, for every way a password changes:

* every session of the user ends, except the one that made the change (a user changing their
  own password stays signed in there and nowhere else);
* an administrator's reset (``PATCH /admin/users/{user_id}``) is an account recovery: the old
  password, and whatever was obtained with it, is no longer trusted, so every active personal
  access token of the user is revoked too. A user's own change keeps their tokens, which they
  see and can revoke under ``/tokens``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from server.storage.models import PersonalAccessToken
from server.storage.sessions import delete_user_sessions
from server.storage.types import utcnow

__all__ = ["EndedCredentials", "end_credentials_after_password_change"]


@dataclass(frozen=True)
class EndedCredentials:
    """How many sessions ended and tokens were revoked (for the audit record)."""

    sessions: int
    tokens: int


def end_credentials_after_password_change(
    session: Session,
    user_id: str,
    *,
    reset_by_admin: bool,
    keep_session_id: str | None = None,
    now: datetime | None = None,
) -> EndedCredentials:
    """End the user's sessions but ``keep_session_id``; on an admin's reset revoke their active
    personal access tokens as well. Runs in the caller's transaction, with the password write."""
    ended = delete_user_sessions(session, user_id, except_session_id=keep_session_id)
    revoked = 0
    if reset_by_admin:
        result = session.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.user_id == user_id, PersonalAccessToken.status == "active")
            .values(status="revoked", revoked_at=now or utcnow())
        )
        revoked = int(getattr(result, "rowcount", 0))
    return EndedCredentials(sessions=ended, tokens=revoked)
