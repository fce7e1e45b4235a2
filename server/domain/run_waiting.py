"""Waiting for a run to end: what ``?wait=true`` on a run-creating request does.

The wait reads the run until it has ended (then with its trace) or waits for input, and gives
up at the timeout. It sleeps between reads, waking early when this process's event bus
announces a status change of the run (an executor thread of the same process), and reads again
at least every ``poll`` seconds otherwise (an executor in another process). No transaction is
held while it sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from server.domain import events, runs
from server.domain.run_states import TERMINAL, WAITING
from server.domain.unit import SYSTEM, unit_of_work
from server.storage.run_models import Run

__all__ = ["Waited", "await_run"]


@dataclass(frozen=True, slots=True)
class Waited:
    """The run when the wait ended, and its trace if it has ended."""

    run: Run
    trace: runs.Trace | None

    @property
    def ended(self) -> bool:
        return self.trace is not None


def await_run(
    sessions: Callable[[], Session],
    workspace_id: str,
    run_id: str,
    *,
    timeout: float,
    poll: float = 0.5,
    bus: events.EventBus = events.BUS,
) -> Waited:
    """The run once it has ended or waits for input, or as it stands after ``timeout``
    seconds."""
    woken = threading.Event()

    def hear(event: events.Event) -> None:
        if event.type == "run.status_changed" and event.data.get("run_id") == run_id:
            woken.set()

    unsubscribe = bus.subscribe(hear)
    deadline = time.monotonic() + timeout
    try:
        while True:
            woken.clear()
            with unit_of_work(sessions, SYSTEM) as uow:
                run = runs.get_run(uow, workspace_id, run_id)
                if run.status in TERMINAL:
                    return Waited(run, runs.run_trace(uow, workspace_id, run_id))
            left = deadline - time.monotonic()
            if run.status == WAITING or left <= 0:
                return Waited(run, None)
            woken.wait(min(poll, left))
    finally:
        unsubscribe()
