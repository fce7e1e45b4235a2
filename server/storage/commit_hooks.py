"""Work to do once a session's transaction has committed, and never if it rolls back.

``after_commit(session, callback)`` queues ``callback`` on the session; it runs right after the
session's next commit (in the committing thread, with the session no longer usable for
queries) and is dropped by a rollback. Whoever owns the transaction (the HTTP dispatcher, a
``unit_of_work``) commits as it always does: nothing else needs to know.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session

__all__ = ["after_commit"]

_PENDING = "gantry.after_commit"
_log = logging.getLogger(__name__)


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` after ``session`` commits its current transaction."""
    session.info.setdefault(_PENDING, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run(session: Session) -> None:
    callbacks: list[Callable[[], None]] = session.info.pop(_PENDING, [])
    for callback in callbacks:
        try:
            callback()
        except Exception:  # the change is committed: a failing listener must not undo the answer
            _log.exception("an after-commit callback failed")


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
