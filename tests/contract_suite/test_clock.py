"""The suite's clock: shifted for one block, the real time again after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contract_tests.clock import SuiteClock, at_callers_time
from contract_tests.world import Caller


def test_shifted_moves_now_for_the_block_only() -> None:
    clock = SuiteClock()
    with clock.shifted(timedelta(days=2)):
        assert clock.now() - datetime.now(UTC) > timedelta(days=1, hours=23)
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)


def test_a_caller_without_a_shift_leaves_the_clock_alone() -> None:
    clock = SuiteClock()
    later = Caller("later", "invalid", clock=clock, clock_shift=timedelta(hours=13))
    with at_callers_time(Caller("now", "pat")):
        assert abs(clock.now() - datetime.now(UTC)) < timedelta(minutes=1)
    with at_callers_time(later):
        assert clock.now() - datetime.now(UTC) > timedelta(hours=12)
