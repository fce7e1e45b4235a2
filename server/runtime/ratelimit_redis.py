"""The Redis rate-limit store: each key's hits in a sorted set, checked and counted by one script.

Redis runs a script atomically, so the check and the count cannot interleave with another
worker's. Each admitted hit renews the set's expiry to one window, so a key that goes quiet
disappears by itself once its hits have left the window.
"""

from __future__ import annotations

import secrets
from typing import Any

import redis

KEY_PREFIX = "gantry:ratelimit:"

# KEYS[1]: the sorted set of one key's hits, scored by time. ARGV: now, window, limit, member.
# Returns nil when the hit was counted, else the seconds until the oldest hit leaves the window.
_TAKE = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return false
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return tostring(tonumber(oldest[2]) + window - now)
"""

# ``_TAKE`` that also tells where the key stands: {counted (1|0), hits in the window, seconds
# to wait or "", the newest hit's time}.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
  return {1, count + 1, '', tostring(now)}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local newest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
return {0, count, tostring(tonumber(oldest[2]) + window - now), tostring(newest[2])}
"""


class RedisRateLimitStore:
    """``RateLimitStore`` over Redis (``GANTRY_REDIS_URL``)."""

    def __init__(self, client: Any, *, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix
        self._take = client.register_script(_TAKE)
        self._admit = client.register_script(_ADMIT)

    @classmethod
    def from_url(cls, url: str, *, prefix: str = KEY_PREFIX) -> RedisRateLimitStore:
        """A store on the Redis at ``url`` (``redis://host:port/db``)."""
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, prefix=prefix)

    def take(self, key: str, limit: int, window: float, now: float) -> float | None:
        """One round trip: the script checks and counts the hit atomically."""
        # A random suffix keeps two hits at the same instant apart in the set.
        member = f"{now!r}:{secrets.token_hex(4)}"
        wait = self._take(keys=[self.prefix + key], args=[repr(now), repr(window), limit, member])
        return None if wait is None else float(wait)

    def admit(
        self, key: str, limit: int, window: float, now: float
    ) -> tuple[float | None, int, float | None]:
        """``take``, plus the hits in the window after it and when the newest expires."""
        member = f"{now!r}:{secrets.token_hex(4)}"
        counted, hits, wait, newest = self._admit(
            keys=[self.prefix + key], args=[repr(now), repr(window), limit, member]
        )
        expiry = float(newest) + window
        return (None if int(counted) else float(wait)), int(hits), expiry

    def close(self) -> None:
        """Release the connection pool."""
        self.client.close()
