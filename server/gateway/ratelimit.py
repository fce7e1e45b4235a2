"""Gateway rate limits: per credential, with a route's own limit where it sets one.

PRODUCT's token bucket (``requests_per_minute`` refilling a bucket of ``burst``) is kept as
an exact sliding window in the store every worker shares (``server.runtime.ratelimit``'s):
at most ``burst`` requests in any ``60 * burst / requests_per_minute`` seconds, which is the
same average rate with the same burst. Every answer says where the caller stands, in
PRODUCT's headers and OpenAI's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server.gateway.config import RouteConfig


class HitStore(Protocol):
    """The shared store's counting check (``RateLimitStore.admit``)."""

    def admit(
        self, key: str, limit: int, window: float, now: float
    ) -> tuple[float | None, int, float | None]:
        """Count a hit unless the window is full. Returns the seconds to wait (None when
        counted), the hits now in the window, and when the newest of them expires."""
        ...


@dataclass(frozen=True)
class Quota:
    requests_per_minute: int
    burst: int

    @property
    def window(self) -> float:
        return 60.0 * self.burst / self.requests_per_minute


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int  # requests per minute
    remaining: int
    reset_s: int  # until the window is empty again
    retry_after_s: int | None

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_s),
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": f"{self.reset_s}s",
        }
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(self.retry_after_s)
            headers["retry-after-ms"] = str(self.retry_after_s * 1000)
        return headers


def quota_for(route: RouteConfig | None, default: Quota) -> tuple[Quota, str]:
    """The quota a call falls under and the key suffix that counts it (a route with a limit
    of its own counts its calls apart)."""
    if route is None or route.requests_per_minute is None:
        return default, ""
    rpm = max(1, route.requests_per_minute)
    burst = route.burst if route.burst is not None else min(default.burst, rpm)
    return Quota(rpm, max(1, burst)), f":{route.id}"


class GatewayLimiter:
    """Counts calls per credential in the shared store."""

    def __init__(
        self, store: HitStore, default: Quota, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self.default = default
        self._clock = clock

    def check(self, credential_id: str, route: RouteConfig | None) -> Verdict:
        quota, suffix = quota_for(route, self.default)
        now = self._clock()
        wait, hits, newest_expiry = self.store.admit(
            f"gateway:{credential_id}{suffix}", quota.burst, quota.window, now
        )
        reset = 0 if newest_expiry is None else max(0, math.ceil(newest_expiry - now))
        if wait is None:
            return Verdict(True, quota.requests_per_minute, quota.burst - hits, reset, None)
        retry = max(1, math.ceil(min(wait, quota.window)))
        return Verdict(False, quota.requests_per_minute, 0, max(reset, retry), retry)
