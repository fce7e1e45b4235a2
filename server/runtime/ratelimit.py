"""Rate limits that hold across every worker and instance: an exact sliding window per key.

``RateLimiter(store, limit, per)`` admits at most ``limit`` hits per key in any ``per`` seconds.
The hits are kept in a store all processes share, so 10 a minute means 10 across the whole
deployment, not 10 per worker: the database by default (``server.storage.rate_limits``), Redis
when ``GANTRY_REDIS_URL`` is set (``server.runtime.ratelimit_redis``). ``rate_limit_store`` is the
one place that picks between them. A refused hit is not counted, so a key never holds more than
``limit`` hits and an attacker who keeps trying does not push the window ahead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from server.runtime.errors import RateLimited

if TYPE_CHECKING:
    from server.config import Config
    from server.storage.db import Database


class RateLimitStore(Protocol):
    """Shared hit counts: one atomic check-and-count per call, race-free across processes."""

    def take(self, key: str, limit: int, window: float, now: float) -> float | None:
        """Count a hit at ``now`` for ``key`` if fewer than ``limit`` hits lie in the
        ``window`` seconds before it and return None; else count nothing and return the
        seconds until the oldest of them leaves the window."""
        ...

    def admit(
        self, key: str, limit: int, window: float, now: float
    ) -> tuple[float | None, int, float | None]:
        """``take``, plus where the key stands after it: the hits in the window and when the
        newest of them leaves it (the AI gateway's rate-limit headers read these)."""
        ...


class RateLimiter:
    """``limit`` hits per ``per`` seconds per key, counted in ``store`` under ``name``."""

    def __init__(
        self,
        store: RateLimitStore,
        limit: int,
        per: float = 60.0,
        *,
        name: str = "auth",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.limit = limit
        self.per = per
        self.name = name
        # Wall-clock time: every worker and instance must read the same clock.
        self._clock = clock

    def hit(self, key: str) -> None:
        """Count one hit for ``key``, or raise ``RateLimited`` with the whole seconds to wait."""
        wait = self.store.take(f"{self.name}:{key}", self.limit, self.per, self._clock())
        if wait is not None:
            # Workers read the clock before they queue for the store, so the oldest counted hit
            # may be a hair younger than ``now``: the wait is never more than one window.
            raise RateLimited(max(1, math.ceil(min(wait, self.per))))


def rate_limit_store(config: Config, database: Database) -> RateLimitStore:
    """The store every rate limit of the app shares: Redis when configured, else the database."""
    if config.redis_url:
        # Imported only here: a deployment without Redis never loads its client.
        from server.runtime.ratelimit_redis import RedisRateLimitStore

        return RedisRateLimitStore.from_url(config.redis_url)
    from server.storage.rate_limits import SqlRateLimitStore

    return SqlRateLimitStore(database.write_engine)
