"""The executor's threads, heartbeat and reaper, on both databases, with engines of the test's
own (the workflow engine has tests of its own)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta

import pytest

from server.domain import run_queue
from server.domain.errors import Conflict
from server.domain.events import EventBus
from server.domain.run_queue import Lease, NewRun, Outcome, QueuePolicy, StepWrite
from server.domain.unit import UnitOfWork, unit_of_work
from server.executor import Executor
from server.storage import runs as run_rows
from server.storage.run_models import Run
from tests.runs.conftest import Queue

Units = Callable[[], AbstractContextManager[UnitOfWork]]
SHORT = QueuePolicy(lease_ttl=timedelta(seconds=1))


def now() -> datetime:
    return datetime.now(UTC)


def enqueue(queue: Queue, count: int = 1) -> list[str]:
    ids = []
    for _ in range(count):
        with unit_of_work(queue.database.write_sessionmaker, now=now()) as uow:
            new = NewRun(workspace_id=queue.workspace_id, source_type="agent", source_id=None)
            ids.append(run_queue.enqueue(uow, new).run.id)
    return ids


def finished(queue: Queue, ids: list[str], timeout: float = 10.0) -> dict[str, Run]:
    deadline = time.monotonic() + timeout
    while True:
        with queue.database.session() as s:
            found = {r.id: r for r in s.query(Run).filter(Run.id.in_(ids)).all()}
        if all(r.finished_at is not None for r in found.values()) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@pytest.fixture
def executors(queue: Queue) -> Iterator[Callable[..., Executor]]:
    started: list[Executor] = []

    def start(engine: Callable[[Units, str, Lease], None], **options: object) -> Executor:
        executor = Executor(
            queue.database.write_sessionmaker,
            engine,
            bus=EventBus(),
            **options,  # type: ignore[arg-type]
        )
        started.append(executor.start())
        return executor

    yield start
    for executor in started:
        executor.stop(timeout=5)


def two_steps(units: Units, run_id: str, lease: Lease) -> None:
    for key in ("a", "b"):
        with units() as uow:
            run_queue.record_step(
                uow, lease, StepWrite(key, key, "transform", "succeeded", output=key)
            )
    with units() as uow:
        run_queue.complete(uow, lease, Outcome("succeeded", output="ab"))


def test_threads_execute_every_queued_run(queue: Queue, executors: Callable[..., Executor]) -> None:
    ids = enqueue(queue, 12)
    executors(two_steps, threads=3, poll_s=0.05)
    runs = finished(queue, ids)
    assert {r.status for r in runs.values()} == {"succeeded"}
    assert {r.attempt for r in runs.values()} == {1}
    with queue.database.session() as s:
        for run_id in ids:
            assert [t.to_status for t in run_rows.history(s, run_id)] == [
                "queued", "claimed", "running", "succeeded",
            ]  # fmt: skip


def test_a_failing_engine_fails_its_run(queue: Queue, executors: Callable[..., Executor]) -> None:
    def broken(units: Units, run_id: str, lease: Lease) -> None:
        raise RuntimeError("boom")

    (run_id,) = enqueue(queue)
    executors(broken, threads=1, poll_s=0.05)
    run = finished(queue, [run_id])[run_id]
    assert run.status == "failed"
    assert run.error == {"code": "executor_error", "message": "RuntimeError: boom"}


def test_the_heartbeat_keeps_a_long_run(queue: Queue, executors: Callable[..., Executor]) -> None:
    release = threading.Event()

    def slow(units: Units, run_id: str, lease: Lease) -> None:
        release.wait(10)
        two_steps(units, run_id, lease)

    (run_id,) = enqueue(queue)
    executors(slow, threads=1, poll_s=0.05, policy=SHORT)
    time.sleep(2.5)  # two and a half lease lifetimes, each renewed (and the reaper sweeping)
    release.set()
    run = finished(queue, [run_id])[run_id]
    assert (run.status, run.attempt) == ("succeeded", 1)


def test_a_stalled_holder_loses_its_run_to_another_executor(
    queue: Queue, executors: Callable[..., Executor]
) -> None:
    """A holder that stops heartbeating (a stalled process) loses its lease; the reaper
    re-queues the run, another executor completes it, and the stalled one is fenced off."""
    stalled = threading.Event()
    outcomes: list[str] = []

    def stalls(units: Units, run_id: str, lease: Lease) -> None:
        stalled.set()
        time.sleep(2.5)
        try:
            with units() as uow:
                run_queue.complete(uow, lease, Outcome("succeeded", output="late"))
            outcomes.append("completed")
        except Conflict as refused:  # lost (or ended by its new holder already)
            outcomes.append(refused.code)

    (run_id,) = enqueue(queue)
    first = executors(stalls, threads=1, poll_s=0.05, policy=SHORT, reap_every_s=0.2)
    assert stalled.wait(5)
    first.renew_leases = lambda: None  # type: ignore[method-assign]  # its heartbeat stalls too
    executors(two_steps, threads=1, poll_s=0.05, policy=SHORT, reap_every_s=0.2)
    run = finished(queue, [run_id])[run_id]
    assert (run.status, run.output, run.attempt) == ("succeeded", "ab", 2)
    deadline = time.monotonic() + 5
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert outcomes in (["lease_lost"], ["invalid_transition"])
