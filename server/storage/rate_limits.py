"""The database rate-limit store: one row per counted hit, checked and counted under a lock.

Each ``take`` is one short transaction of its own, apart from the request's, so a hit stays
counted when the request fails (a wrong password is exactly what must count). The transaction
holds a lock that serialises the hits of one key across every process before it reads: on
SQLite the database's write lock, which a transaction of ``Database.write_engine`` takes as it
begins (``BEGIN IMMEDIATE``), on PostgreSQL a transaction-level advisory lock on the key's hash.
Under it, counting the key's hits in the window and adding one cannot interleave with another
worker doing the same.

Rows do not pile up: a counted hit deletes its key's hits that have left the window, and at most
once per ``SWEEP_EVERY`` seconds per process one statement deletes every expired row (the hits
of keys that went quiet).
"""

from __future__ import annotations

import hashlib
import time

from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, text

from server.storage.models import RateLimitHit

SWEEP_EVERY = 60.0

_HIT = RateLimitHit
# Built once: the AI gateway takes a hit on every call, and building a statement costs about as
# much as running it on SQLite.
_IN_WINDOW = select(func.count(), func.min(_HIT.at), func.max(_HIT.at)).where(
    _HIT.key == bindparam("key"), _HIT.at > bindparam("since")
)
_ADD = insert(_HIT)
_EXPIRED_OF_KEY = delete(_HIT).where(
    _HIT.key == bindparam("key"), _HIT.expires_at <= bindparam("now")
)
_EXPIRED = delete(_HIT).where(_HIT.expires_at <= bindparam("now"))
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:id)")


def _advisory_key(key: str) -> int:
    """A signed 64-bit lock id for ``key`` (what ``pg_advisory_xact_lock`` takes)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)


class SqlRateLimitStore:
    """``RateLimitStore`` over the ``rate_limit_hits`` table."""

    def __init__(self, write_engine: Engine, *, sweep_every: float = SWEEP_EVERY) -> None:
        self.engine = write_engine
        self.sweep_every = sweep_every
        self._next_sweep = 0.0  # monotonic; the first hit sweeps

    def take(self, key: str, limit: int, window: float, now: float) -> float | None:
        """Count the hit if the window has room; else the seconds until it has."""
        return self.admit(key, limit, window, now)[0]

    def admit(
        self, key: str, limit: int, window: float, now: float
    ) -> tuple[float | None, int, float | None]:
        """``take``, plus the hits in the window after it and when the newest expires."""
        with self.engine.connect() as connection:
            self._lock(connection, key)
            count, oldest, newest = connection.execute(
                _IN_WINDOW, {"key": key, "since": now - window}
            ).one()
            if count >= limit:
                connection.rollback()
                wait = window if oldest is None else float(oldest) + window - now
                return wait, count, None if newest is None else float(newest) + window
            connection.execute(_ADD, {"key": key, "at": now, "expires_at": now + window})
            connection.execute(_EXPIRED_OF_KEY, {"key": key, "now": now})
            self._sweep(connection, now)
            connection.commit()
        return None, count + 1, now + window

    def _lock(self, connection: Connection, key: str) -> None:
        if connection.dialect.name == "postgresql":
            connection.execute(_PG_LOCK, {"id": _advisory_key(key)})
        # SQLite: the write engine's transaction began with the write lock already.

    def _sweep(self, connection: Connection, now: float) -> None:
        """Delete every expired hit, at most once per ``sweep_every`` seconds in this process."""
        tick = time.monotonic()
        if tick < self._next_sweep:
            return
        self._next_sweep = tick + self.sweep_every
        connection.execute(_EXPIRED, {"now": now})
