"""The run queue on both databases: claims, leases, fencing, the reaper and idempotency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from server.domain import run_queue, run_states, runs
from server.domain.errors import Conflict
from server.domain.run_queue import (
    Lease,
    LeaseLost,
    LogLine,
    NewRun,
    Outcome,
    QueuePolicy,
    StepWrite,
)
from server.storage import runs as run_rows
from server.storage.run_models import Run, RunLog, RunStep
from tests.runs.conftest import Queue

POLICY = QueuePolicy()


def enqueue(queue: Queue, **fields: object) -> str:
    with queue.unit() as uow:
        new = NewRun(
            workspace_id=queue.workspace_id,
            source_type="workflow",
            source_id=None,
            **fields,  # type: ignore[arg-type]
        )
        return run_queue.enqueue(uow, new, POLICY).run.id


def claim(queue: Queue, owner: str = "executor-a", **kwargs: object) -> list[Lease]:
    with queue.unit() as uow:
        return run_queue.claim_next(uow, owner=owner, policy=POLICY, **kwargs)  # type: ignore[arg-type]


def run_of(queue: Queue, run_id: str) -> Run:
    with queue.database.session() as s:
        run = s.get(Run, run_id)
        assert run is not None
        return run


def statuses(queue: Queue, run_id: str) -> list[str]:
    with queue.database.session() as s:
        return [t.to_status for t in run_rows.history(s, run_id)]


def assert_legal(queue: Queue, run_id: str) -> None:
    with queue.database.session() as s:
        steps = [(t.from_status, t.to_status, t.event) for t in run_rows.history(s, run_id)]
    assert run_states.is_legal_history(steps), steps


def test_a_claim_starts_the_oldest_run_once(queue: Queue) -> None:
    first = enqueue(queue)
    queue.advance(seconds=1)
    second = enqueue(queue)
    (lease,) = claim(queue)
    assert lease.run_id == first and lease.attempt == 1
    assert lease.lease_id.endswith(first)
    run = run_of(queue, first)
    assert (run.status, run.attempt, run.lease_owner) == ("running", 1, "executor-a")
    assert run.started_at == queue.now and run.deadline_at == queue.now + POLICY.max_duration
    assert statuses(queue, first) == ["queued", "claimed", "running"]
    (other,) = claim(queue, owner="executor-b")
    assert other.run_id == second
    assert claim(queue) == []


def test_a_batch_claim_gives_each_run_its_own_lease(queue: Queue) -> None:
    ids = {enqueue(queue) for _ in range(3)}
    leases = claim(queue, limit=5, start_now=False)
    assert {lease.run_id for lease in leases} == ids
    assert len({lease.lease_id for lease in leases}) == 3
    assert {run_of(queue, run_id).status for run_id in ids} == {"claimed"}


def test_completion_is_fenced_and_repeatable(queue: Queue) -> None:
    run_id = enqueue(queue)
    (lease,) = claim(queue)
    done = Outcome("succeeded", output={"text": "hi"})
    with queue.unit() as uow:
        run_queue.complete(uow, lease, done)
    with queue.unit() as uow:  # the identical completion again: answered, nothing changes
        assert run_queue.complete(uow, lease, done).status == "succeeded"
    with queue.unit() as uow, pytest.raises(Conflict) as refused:
        run_queue.complete(uow, lease, Outcome("failed", error={"message": "no"}))
    assert refused.value.code == "invalid_transition"
    assert refused.value.extra == {"state": "succeeded"}
    assert statuses(queue, run_id) == ["queued", "claimed", "running", "succeeded"]
    run = run_of(queue, run_id)
    assert run.output == {"text": "hi"} and run.finished_at == queue.now
    assert run.lease_expires_at is None


def test_a_lost_lease_is_requeued_and_its_old_holder_fenced_off(queue: Queue) -> None:
    run_id = enqueue(queue)
    (old,) = claim(queue, owner="stalled")
    with queue.unit() as uow:
        run_queue.record_step(uow, old, StepWrite("a", "A", "transform", "succeeded", output=1))
    queue.advance(seconds=61)
    with queue.unit() as uow:
        assert run_queue.reap(uow, POLICY).moves == {"requeue": 1}
    run = run_of(queue, run_id)
    assert (run.status, run.lease_owner, run.lease_expires_at) == ("queued", None, None)
    (new,) = claim(queue, owner="fresh")
    assert new.attempt == 2 and new.lease_id != old.lease_id
    for write in (
        lambda uow: run_queue.heartbeat(uow, old, POLICY),
        lambda uow: run_queue.record_step(uow, old, StepWrite("b", "B", "transform", "running")),
        lambda uow: run_queue.append_logs(uow, old, [LogLine("late")]),
        lambda uow: run_queue.complete(uow, old, Outcome("succeeded")),
    ):
        with queue.unit() as uow, pytest.raises(LeaseLost):
            write(uow)
    with queue.unit() as uow:  # the succeeded step is kept as the first holder left it
        step = run_queue.record_step(uow, new, StepWrite("a", "A", "transform", "running"))
        assert (step.status, step.output, step.lease_id) == ("succeeded", 1, old.lease_id)
        run_queue.complete(uow, new, Outcome("succeeded"))
    assert statuses(queue, run_id) == [
        "queued", "claimed", "running", "queued", "claimed", "running", "succeeded",
    ]  # fmt: skip
    assert_legal(queue, run_id)


def test_a_heartbeat_keeps_the_lease(queue: Queue) -> None:
    run_id = enqueue(queue)
    (lease,) = claim(queue)
    queue.advance(seconds=50)
    with queue.unit() as uow:
        beat = run_queue.heartbeat(uow, lease, POLICY)
    assert beat.lease_expires_at == queue.now + POLICY.lease_ttl and not beat.cancel_requested
    queue.advance(seconds=50)  # past the first lease, within the extended one
    with queue.unit() as uow:
        assert run_queue.reap(uow, POLICY).total == 0
    assert run_of(queue, run_id).status == "running"


def test_the_last_attempt_times_out(queue: Queue) -> None:
    run_id = enqueue(queue)
    for attempt in range(1, POLICY.max_attempts + 1):
        (lease,) = claim(queue)
        assert lease.attempt == attempt
        queue.advance(seconds=61)
        with queue.unit() as uow:
            run_queue.reap(uow, POLICY)
    run = run_of(queue, run_id)
    assert run.status == "timed_out" and run.error is not None
    assert run.error["code"] == "lease_expired"
    assert claim(queue) == []
    assert_legal(queue, run_id)


def test_queue_ttl_and_max_duration_time_runs_out(queue: Queue) -> None:
    long_leases = QueuePolicy(lease_ttl=timedelta(hours=2))
    started = enqueue(queue)
    queue.advance(hours=23)
    left = enqueue(queue)
    with queue.unit() as uow:  # the oldest
        (lease,) = run_queue.claim_next(uow, owner="a", policy=long_leases)
    assert lease.run_id == started
    queue.advance(minutes=59, seconds=59)
    with queue.unit() as uow:  # its maximum duration is not over yet
        assert run_queue.reap(uow, long_leases).total == 0
    queue.advance(seconds=1)
    with queue.unit() as uow:
        assert run_queue.reap(uow, long_leases).moves == {"overrun": 1}
    assert run_of(queue, started).error == {
        "code": "max_duration_exceeded",
        "message": "The run ran longer than its maximum duration.",
    }
    queue.advance(hours=23)
    with queue.unit() as uow:
        assert run_queue.reap(uow, long_leases).moves == {"queue_timeout": 1}
    assert run_of(queue, left).status == "timed_out"
    assert_legal(queue, started)
    assert_legal(queue, left)


def test_waiting_releases_the_lease(queue: Queue) -> None:
    enqueue(queue)
    (lease,) = claim(queue)
    with queue.unit() as uow:
        run_queue.record_step(uow, lease, StepWrite("ok", "Approve", "approval", "waiting"))
        run_queue.wait_for_input(uow, lease, release=True)
    queue.advance(hours=2)
    with queue.unit() as uow:  # no lease, no deadline while it waits
        assert run_queue.reap(uow, POLICY).total == 0
    assert claim(queue) == []
    with queue.unit() as uow, pytest.raises(LeaseLost):
        run_queue.heartbeat(uow, lease, POLICY)


def test_logs_ignore_a_repeated_seq(queue: Queue) -> None:
    run_id = enqueue(queue)
    (lease,) = claim(queue)
    with queue.unit() as uow:
        run_queue.append_logs(uow, lease, [LogLine("one"), LogLine("two", channel="stdout")])
    with queue.unit() as uow:
        run_queue.append_logs(uow, lease, [LogLine("again", seq=2), LogLine("three", seq=7)])
    with queue.database.session() as s:
        lines = s.query(RunLog).filter_by(run_id=run_id).order_by(RunLog.seq).all()
        assert [(line.seq, line.text) for line in lines] == [(1, "one"), (2, "two"), (7, "three")]


def test_idempotency_key_replays_or_refuses(queue: Queue) -> None:
    first = enqueue(queue, idempotency_key="k1", request_fingerprint="a")
    assert enqueue(queue, idempotency_key="k1", request_fingerprint="a") == first
    with pytest.raises(Conflict) as refused:
        enqueue(queue, idempotency_key="k1", request_fingerprint="b")
    assert refused.value.code == "idempotency_key_reused"
    queue.advance(hours=24)  # forgotten after a day
    assert enqueue(queue, idempotency_key="k1", request_fingerprint="b") != first


def test_one_key_sent_at_once_by_many_makes_one_run(queue: Queue) -> None:
    start = threading.Barrier(6)

    def send(_: int) -> str:
        start.wait()
        try:
            return enqueue(queue, idempotency_key="same", request_fingerprint="a")
        except Conflict as refused:  # the first is still being made: the client retries
            assert refused.code == "request_in_progress"
            return "in progress"

    with ThreadPoolExecutor(6) as pool:
        answers = set(pool.map(send, range(6)))
    made = answers - {"in progress"}
    assert len(made) == 1, answers
    with queue.database.session() as s:
        assert s.query(Run).filter_by(idempotency_key="same").count() == 1


def test_concurrent_claimers_never_share_a_run(queue: Queue) -> None:
    ids = {enqueue(queue) for _ in range(40)}
    start = threading.Barrier(4)

    def claimer(name: str) -> list[str]:
        start.wait()
        got: list[str] = []
        while leases := claim(queue, owner=name, limit=3):
            got.extend(lease.run_id for lease in leases)
        return got

    with ThreadPoolExecutor(4) as pool:
        claimed = [run_id for got in pool.map(claimer, "abcd") for run_id in got]
    assert sorted(claimed) == sorted(ids)
    with queue.database.session() as s:
        assert {r.attempt for r in s.query(Run).all()} == {1}
        assert s.query(RunStep).count() == 0


def test_a_run_asked_to_cancel_is_cancelled_after_the_grace(queue: Queue) -> None:
    run_id = enqueue(queue)
    (lease,) = claim(queue)
    with queue.unit() as uow:
        assert runs.cancel_run(uow, queue.workspace_id, run_id).status == "running"
    queue.advance(seconds=29)
    with queue.unit() as uow:
        assert run_queue.heartbeat(uow, lease, POLICY).cancel_requested
        assert run_queue.reap(uow, POLICY).total == 0
    queue.advance(seconds=1)
    with queue.unit() as uow:
        assert run_queue.reap(uow, POLICY).moves == {"force_cancel": 1}
    assert statuses(queue, run_id)[-1] == "cancelled"
    assert_legal(queue, run_id)


def test_time_spent_waiting_is_not_execution_time(queue: Queue) -> None:
    long_leases = QueuePolicy(lease_ttl=timedelta(hours=2))
    run_id = enqueue(queue)
    with queue.unit() as uow:
        (lease,) = run_queue.claim_next(uow, owner="a", policy=long_leases)
    started = queue.now
    queue.advance(minutes=10)
    with queue.unit() as uow:
        run_queue.record_step(uow, lease, StepWrite("ok", "OK?", "approval", "waiting"))
        run_queue.wait_for_input(uow, lease, release=True)
    queue.advance(hours=5)  # a human takes their time
    with queue.unit() as uow:
        runs.submit_input(uow, queue.workspace_id, run_id, {"approved": True})
    run = run_of(queue, run_id)
    assert run.deadline_at == started + POLICY.max_duration + timedelta(hours=5)
    with queue.unit() as uow:
        (again,) = run_queue.claim_next(uow, owner="b", policy=long_leases)
    assert again.run_id == run_id
    queue.advance(minutes=49, seconds=59)  # just short of an hour of execution in all
    with queue.unit() as uow:
        assert run_queue.reap(uow, long_leases).total == 0
    queue.advance(seconds=1)
    with queue.unit() as uow:
        assert run_queue.reap(uow, long_leases).moves == {"overrun": 1}
