"""A small in-process token bucket, keyed per caller (per IP for the auth endpoints)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from server.runtime.errors import RateLimited


class RateLimiter:
    """``rate`` requests per ``per`` seconds with bursts up to ``burst``, per key."""

    def __init__(
        self,
        rate: int,
        per: float = 60.0,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.per = per
        self.burst = burst if burst is not None else rate
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: str) -> None:
        """Take one token for ``key``, or raise ``RateLimited`` with the seconds to wait."""
        refill = self.rate / self.per
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * refill)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                raise RateLimited(math.ceil((1.0 - tokens) / refill))
            self._buckets[key] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle callers rather than grow forever
                self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < self.per}
