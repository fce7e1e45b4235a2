"""The limiter over its store: the key it counts under and the Retry-After it answers."""

from __future__ import annotations

import pytest

from server.runtime.errors import RateLimited
from server.runtime.ratelimit import RateLimiter


class _Store:
    """Refuses with a fixed wait; records what it was asked."""

    def __init__(self, wait: float | None) -> None:
        self.wait = wait
        self.calls: list[tuple[str, int, float, float]] = []

    def take(self, key: str, limit: int, window: float, now: float) -> float | None:
        self.calls.append((key, limit, window, now))
        return self.wait


def test_a_counted_hit_passes_under_the_limiter_name() -> None:
    store = _Store(None)
    RateLimiter(store, 10, per=60.0, name="auth", clock=lambda: 5.0).hit("10.0.0.1")
    assert store.calls == [("auth:10.0.0.1", 10, 60.0, 5.0)]


@pytest.mark.parametrize(
    ("wait", "retry_after"), [(0.2, "1"), (1.0, "1"), (41.3, "42"), (60.0, "60"), (60.4, "60")]
)
def test_a_refused_hit_says_the_whole_seconds_to_wait(wait: float, retry_after: str) -> None:
    with pytest.raises(RateLimited) as caught:
        RateLimiter(_Store(wait), 10).hit("10.0.0.1")
    assert caught.value.headers["Retry-After"] == retry_after
