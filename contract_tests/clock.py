"""A clock the suite controls: the in-process server reads "now" for credential expiry from it.

A credential cannot be issued already expired (a PAT lives at least a day, a session is made
by signing in), so the suite moves the server's clock forward instead, for one request at a
time. A live server has its own clock; callers that need this one are skipped there.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from typing import Any


class SuiteClock:
    """The real time plus an offset that ``shifted`` sets for the length of a block."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()  # one shifted block at a time

    def now(self) -> datetime:
        """What the server takes for "now"."""
        return datetime.now(UTC) + self._offset

    @contextmanager
    def shifted(self, offset: timedelta) -> Iterator[None]:
        """Run the block with the server's clock ``offset`` ahead of the real one."""
        with self._lock:
            self._offset = offset
            try:
                yield
            finally:
                self._offset = timedelta(0)


def at_callers_time(caller: Any) -> Any:
    """A context in which the server's clock is where ``caller`` needs it (often: untouched)."""
    clock, shift = getattr(caller, "clock", None), getattr(caller, "clock_shift", None)
    if clock is None or shift is None:
        return nullcontext()
    return clock.shifted(shift)
