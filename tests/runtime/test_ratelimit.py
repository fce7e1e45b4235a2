"""The token bucket."""

from __future__ import annotations

import pytest

from server.runtime.errors import RateLimited
from server.runtime.ratelimit import RateLimiter


def test_bucket_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2, per=60.0, clock=lambda: now[0])
    limiter.hit("ip")
    limiter.hit("ip")
    with pytest.raises(RateLimited) as caught:
        limiter.hit("ip")
    assert caught.value.headers["Retry-After"] == "30"
    limiter.hit("other-ip")
    now[0] = 30.0
    limiter.hit("ip")
