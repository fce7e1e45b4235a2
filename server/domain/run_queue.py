"""The run queue: runs are enqueued, claimed with a lease, heartbeated and completed by whoever
holds the lease; the reaper re-queues what a dead holder left and times out what overstays.

One mechanism for the server's executor and the pull workers: ``claim_next`` takes the oldest
claimable runs of an executor kind (``server.storage.runs.claim_next``: ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, a conditional update on SQLite) and gives each a new ``Lease`` whose
``lease_id`` is the fencing token. Every later write by the holder (``start``, ``heartbeat``,
``record_step``, ``append_logs``, ``add_usage``, ``wait_for_input``, ``complete``) names the
lease and is refused with 409 ``lease_lost`` once the lease ended or passed to another claim,
so a holder that stalled past its lease can never overwrite its successor's work.

The seam with the workflow engine (``server.domain.workflow_engine``)::

    Units = Callable[[], AbstractContextManager[UnitOfWork]]   # one committed unit per call

    def execute_run(units: Units, run_id: str, lease: Lease, *, models: Models) -> None

The executor (``server.executor``) claims a run (already ``running``: the server's claim
starts it), then calls ``execute_run`` (``models``: how model steps reach the AI gateway).
The engine reads the run and its definition, writes each step with ``record_step`` (a step that
already ``succeeded`` under an earlier lease is returned as it is, never written again: resume
from it), its logs with ``append_logs``, model usage with ``add_usage``, and ends with
``complete`` (``succeeded`` or ``failed``, or ``cancelled`` once ``heartbeat`` reported
``cancel_requested``) or, on an ``approval`` step, ``wait_for_input(..., release=True)``: the
run waits holding no lease, and ``POST /runs/{id}/input`` makes it claimable again (still
``running``). Any call raising ``LeaseLost`` (or ``Conflict`` ``invalid_transition``: cancelled
meanwhile) means: stop, the run is no longer yours. The executor heartbeats its leases in the
background meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from server.domain import run_states
from server.domain.errors import Conflict, NotFound
from server.domain.events import publish
from server.domain.run_states import LEASED, TERMINAL
from server.domain.unit import UnitOfWork
from server.security import new_id
from server.storage import rows
from server.storage import runs as run_rows
from server.storage.run_models import Run, RunLog, RunStep

__all__ = [
    "DEFAULT_POLICY",
    "IDEMPOTENCY_WINDOW",
    "Enqueued",
    "Lease",
    "LeaseLost",
    "LogLine",
    "NewRun",
    "Outcome",
    "QueuePolicy",
    "QueueSettings",
    "ReapReport",
    "StepWrite",
    "Units",
    "add_usage",
    "append_logs",
    "claim_next",
    "complete",
    "enqueue",
    "fingerprint",
    "heartbeat",
    "policy_of",
    "reap",
    "record_step",
    "start",
    "wait_for_input",
]

Units = Callable[[], AbstractContextManager[UnitOfWork]]

# How long an Idempotency-Key is remembered.
IDEMPOTENCY_WINDOW = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class QueuePolicy:
    """The queue's limits (PRODUCT §4.1 defaults; ``server.config`` may change them)."""

    lease_ttl: timedelta = timedelta(seconds=60)
    queue_ttl: timedelta = timedelta(hours=24)
    max_attempts: int = 3
    max_duration: timedelta = timedelta(hours=1)
    cancel_grace: timedelta = timedelta(seconds=30)


DEFAULT_POLICY = QueuePolicy()


class QueueSettings(Protocol):
    """Where the limits come from (``server.config.Config`` is one)."""

    @property
    def run_lease_ttl_s(self) -> float: ...
    @property
    def run_queue_ttl_s(self) -> float: ...
    @property
    def run_max_attempts(self) -> int: ...
    @property
    def run_max_duration_s(self) -> float: ...
    @property
    def run_cancel_grace_s(self) -> float: ...


def policy_of(settings: QueueSettings) -> QueuePolicy:
    """The queue's limits as ``settings`` configure them."""
    return QueuePolicy(
        lease_ttl=timedelta(seconds=settings.run_lease_ttl_s),
        queue_ttl=timedelta(seconds=settings.run_queue_ttl_s),
        max_attempts=settings.run_max_attempts,
        max_duration=timedelta(seconds=settings.run_max_duration_s),
        cancel_grace=timedelta(seconds=settings.run_cancel_grace_s),
    )


class LeaseLost(Conflict):
    """The lease ended or passed to another claim: the holder must stop."""

    code = "lease_lost"


@dataclass(frozen=True, slots=True)
class Lease:
    """A claim on one run: ``lease_id`` is the fencing token every write names."""

    run_id: str
    lease_id: str
    owner: str
    attempt: int
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class NewRun:
    """What a run-creating call asks for."""

    workspace_id: str
    source_type: str
    source_id: str | None
    input: Any = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    executor: str = "server"
    workflow_version: int | None = None
    labels: Sequence[str] = ()
    pinned_worker_id: str | None = None
    retry_of: str | None = None
    # ``Idempotency-Key`` and the fingerprint of the request it came with (``fingerprint``).
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    # The status a replay of the creating request answers with (201 when it waited).
    created_status: int = 202


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The run, and whether it is the replay of an earlier request with the same key."""

    run: Run
    replayed: bool = False


def fingerprint(*parts: Any) -> str:
    """A stable digest of a request (its target and body), to tell a replay from a reuse."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _summary_of_source(new: NewRun) -> str:
    return f"{new.source_type} {new.source_id}" if new.source_id else new.source_type


def enqueue(uow: UnitOfWork, new: NewRun, policy: QueuePolicy = DEFAULT_POLICY) -> Enqueued:
    """Store a queued run, or, for an ``Idempotency-Key`` seen within 24 h on the same source,
    the run it created (409 ``idempotency_key_reused`` if the request differed)."""
    if new.idempotency_key is not None:
        run_rows.hold_keys(uow.db, new.workspace_id)
        earlier = _keyed_run(uow, new)
        if earlier is not None:
            return Enqueued(earlier, replayed=True)
    now = uow.now
    run = Run(
        id=new_id("run_"),
        workspace_id=new.workspace_id,
        source_type=new.source_type,
        source_id=new.source_id,
        workflow_version=new.workflow_version,
        executor=new.executor,
        worker_id=None,
        labels=list(new.labels),
        pinned_worker_id=new.pinned_worker_id,
        status=run_states.INITIAL,
        attempt=0,
        max_attempts=policy.max_attempts,
        retry_of=new.retry_of,
        input=new.input,
        variables=dict(new.variables),
        output=None,
        error=None,
        prompt_tokens=0,
        completion_tokens=0,
        cost_usd=0.0,
        cancel_requested=False,
        queue_expires_at=now + policy.queue_ttl,
        max_duration_s=int(policy.max_duration.total_seconds()),
        idempotency_key=new.idempotency_key,
        request_fingerprint=new.request_fingerprint,
        created_status=new.created_status,
        created_by=uow.actor.actor_id,
        queued_at=now,
        available_at=now,
        created_at=now,
        updated_at=now,
    )
    if new.idempotency_key is not None:
        if not run_rows.add_keyed(uow.db, run):  # a concurrent request with the same key won
            earlier = _keyed_run(uow, new)
            if earlier is None:
                raise Conflict(
                    "A run with this Idempotency-Key is being created.", code="request_in_progress"
                )
            return Enqueued(earlier, replayed=True)
    else:
        rows.add(uow.db, run)
    run_rows.record_transition(uow.db, run, None, "create", now=now)
    source = _summary_of_source(new)
    uow.audit(
        "run.created",
        workspace_id=run.workspace_id,
        target_type="run",
        target_id=run.id,
        summary=f"{uow.actor.label} started a run of {source}",
        metadata={
            "source": run.source_ref,
            "executor": run.executor,
            "retry_of": run.retry_of,
        },
    )
    publish(
        uow,
        "run.created",
        run.workspace_id,
        {"run_id": run.id, "source": run.source_ref, "status": run.status},
    )
    return Enqueued(run)


def _keyed_run(uow: UnitOfWork, new: NewRun) -> Run | None:
    """The run an earlier request with this key created, if it is still remembered; a key
    older than the window is forgotten (and freed for this request)."""
    earlier = rows.find(
        uow.db,
        Run,
        workspace_id=new.workspace_id,
        source_type=new.source_type,
        source_id=new.source_id,
        idempotency_key=new.idempotency_key,
    )
    if earlier is None:
        return None
    if earlier.created_at <= uow.now - IDEMPOTENCY_WINDOW:
        run_rows.forget_key(uow.db, earlier)
        return None
    if earlier.request_fingerprint != new.request_fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request.",
            code="idempotency_key_reused",
        )
    return earlier


# ── moves ───────────────────────────────────────────────────────────────────────────────────


def move(uow: UnitOfWork, run: Run, name: str) -> str:
    """Apply the table's ``name`` move to ``run`` (locked by the caller), record it in the
    history and announce it; returns the status it left."""
    source = run.status
    run.status = run_states.target(name, source)
    run.updated_at = uow.now
    if run.status in TERMINAL:
        run.finished_at = uow.now
        run.lease_expires_at = None
    run_rows.record_transition(uow.db, run, source, name, now=uow.now)
    publish(
        uow,
        "run.status_changed",
        run.workspace_id,
        {"run_id": run.id, "from": source, "to": run.status},
    )
    return source


def _begin(uow: UnitOfWork, run: Run) -> None:
    """Mark the start of execution (the first one only) and the deadline it sets."""
    if run.started_at is None:
        run.started_at = uow.now
        run.deadline_at = uow.now + timedelta(seconds=run.max_duration_s or 0)


def claim_next(
    uow: UnitOfWork,
    *,
    owner: str,
    executor: str = "server",
    policy: QueuePolicy = DEFAULT_POLICY,
    limit: int = 1,
    start_now: bool = True,
    worker_id: str | None = None,
) -> list[Lease]:
    """Claim the oldest claimable runs of ``executor`` for ``owner``; with ``start_now`` (the
    server's executor) each starts at once (``claimed`` then ``running``)."""
    expires_at = uow.now + policy.lease_ttl
    claimed = run_rows.claim_next(
        uow.db,
        executor=executor,
        owner=owner,
        lease_prefix=secrets.token_hex(6),
        now=uow.now,
        expires_at=expires_at,
        limit=limit,
        worker_id=worker_id,
    )
    leases: list[Lease] = []
    for run, source in claimed:
        if source == run_states.QUEUED:
            run_rows.record_transition(uow.db, run, source, "claim", now=uow.now)
            publish(
                uow,
                "run.status_changed",
                run.workspace_id,
                {"run_id": run.id, "from": source, "to": run.status},
            )
            if start_now:
                _begin(uow, run)
                move(uow, run, "start")
        assert run.lease_id is not None
        leases.append(Lease(run.id, run.lease_id, owner, run.attempt, expires_at))
    return leases


def hold(uow: UnitOfWork, run: Run, *, owner: str, lease_ttl: timedelta) -> Lease:
    """Claim and start ``run``, just queued in this unit of work, for the caller that queued
    it (queued → claimed → running), so that no executor takes it: a call that executes its
    own run inline (the playground) holds it as an executor's claim would."""
    run.attempt += 1
    run.lease_id = secrets.token_hex(6) + run.id
    run.lease_owner = owner
    run.lease_expires_at = uow.now + lease_ttl
    move(uow, run, "claim")
    run.started_at = uow.now
    run.deadline_at = uow.now + lease_ttl
    move(uow, run, "start")
    return Lease(run.id, run.lease_id, owner, run.attempt, run.lease_expires_at)


def held(uow: UnitOfWork, lease: Lease) -> Run:
    """The run of ``lease``, locked, if the lease still holds it: else 409 ``lease_lost`` (or
    ``invalid_transition`` when the run has ended)."""
    run = run_rows.lock(uow.db, lease.run_id)
    if run is None:
        raise NotFound("Run not found.")
    if run.lease_id != lease.lease_id or run.status in TERMINAL:
        if run.status in TERMINAL:
            raise run_states.refuse(run.status, f"The run has ended ({run.status}).")
        raise LeaseLost("The run's lease passed to another claim.", extra={"state": run.status})
    if run.lease_expires_at is None or run.lease_expires_at <= uow.now:
        raise LeaseLost("The run's lease has expired.", extra={"state": run.status})
    return run


def start(uow: UnitOfWork, lease: Lease) -> Run:
    """``claimed`` → ``running`` by the holder."""
    run = held(uow, lease)
    _begin(uow, run)
    move(uow, run, "start")
    return run


@dataclass(frozen=True, slots=True)
class Beat:
    """A heartbeat's answer."""

    lease_expires_at: datetime
    cancel_requested: bool
    status: str


def heartbeat(uow: UnitOfWork, lease: Lease, policy: QueuePolicy = DEFAULT_POLICY) -> Beat:
    """Extend the lease; says whether a cancellation was requested."""
    run = held(uow, lease)
    if run.status not in LEASED:
        raise run_states.refuse(run.status)
    run.lease_expires_at = uow.now + policy.lease_ttl
    run.updated_at = uow.now
    return Beat(run.lease_expires_at, run.cancel_requested, run.status)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How the holder ends a run."""

    status: str  # succeeded | failed | cancelled
    output: Any = None
    error: Mapping[str, Any] | None = None


_COMPLETIONS = {"succeeded": "succeed", "failed": "fail", "cancelled": "finish_cancelled"}


def complete(uow: UnitOfWork, lease: Lease, outcome: Outcome) -> Run:
    """End the run as ``outcome`` says. Repeating the identical completion answers the run
    again; a different one after the end is 409 ``invalid_transition``."""
    run = run_rows.lock(uow.db, lease.run_id)
    if run is None:
        raise NotFound("Run not found.")
    error = dict(outcome.error) if outcome.error is not None else None
    repeated = (run.status, run.output, run.error) == (outcome.status, outcome.output, error)
    if run.status in TERMINAL and run.lease_id == lease.lease_id and repeated:
        return run
    run = held(uow, lease)
    name = _COMPLETIONS.get(outcome.status)
    if name is None:
        raise run_states.refuse(run.status, f"A run cannot be completed as {outcome.status}.")
    if name == "finish_cancelled" and not run.cancel_requested:
        raise run_states.refuse(run.status, "A run is completed as cancelled only when asked to.")
    run.output = outcome.output
    run.error = error
    move(uow, run, name)
    return run


def wait_for_input(uow: UnitOfWork, lease: Lease, *, release: bool) -> Run:
    """``running`` → ``waiting`` (an approval or a question for a human). With ``release`` the
    holder gives up its lease: ``POST /runs/{id}/input`` makes the run claimable again."""
    run = held(uow, lease)
    move(uow, run, "wait")
    if release:
        run.lease_owner = None
        run.lease_expires_at = None
    return run


def add_usage(
    uow: UnitOfWork,
    lease: Lease,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cost_usd: float,
) -> Run:
    """Add a model call's usage to the run's totals."""
    run = held(uow, lease)
    run.prompt_tokens = (run.prompt_tokens or 0) + prompt_tokens
    run.completion_tokens = (run.completion_tokens or 0) + completion_tokens
    run.cost_usd = (run.cost_usd or 0.0) + cost_usd
    run.updated_at = uow.now
    return run


# ── steps and logs ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class StepWrite:
    """A step's state as its writer knows it (``key`` names it within the run)."""

    key: str
    name: str
    type: str
    status: str
    parent_key: str | None = None
    input: Any = None
    output: Any = None
    error: Mapping[str, Any] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


def record_step(uow: UnitOfWork, lease: Lease, write: StepWrite) -> RunStep:
    """Create or update the run's step ``write.key`` as the lease holder. A step that has
    succeeded is never written again (whoever holds the run now resumes from it)."""
    run = held(uow, lease)
    step = run_rows.step_by_key(uow.db, run.id, write.key)
    if step is not None and step.status == "succeeded":
        return step
    now = uow.now
    parent_id = None
    if write.parent_key is not None:
        parent = run_rows.step_by_key(uow.db, run.id, write.parent_key)
        if parent is None:
            raise NotFound(f"The parent step {write.parent_key!r} does not exist.")
        parent_id = parent.id
    if step is None:
        step = rows.add(
            uow.db,
            RunStep(
                id=new_id("stp_"),
                run_id=run.id,
                workspace_id=run.workspace_id,
                parent_step_id=parent_id,
                key=write.key,
                name=write.name,
                type=write.type,
                status=write.status,
                position=run_rows.next_step_position(uow.db, run.id),
                attempt=run.attempt,
                lease_id=lease.lease_id,
                prompt_tokens=0,
                completion_tokens=0,
                cost_usd=0.0,
                created_at=now,
                updated_at=now,
            ),
        )
    step.name, step.type, step.status = write.name, write.type, write.status
    step.parent_step_id = parent_id
    step.input, step.output = write.input, write.output
    step.error = dict(write.error) if write.error is not None else None
    step.prompt_tokens = write.prompt_tokens
    step.completion_tokens = write.completion_tokens
    step.cost_usd = write.cost_usd
    step.attempt, step.lease_id = run.attempt, lease.lease_id
    if write.status != "pending" and step.started_at is None:
        step.started_at = now
    if write.status in ("succeeded", "failed", "skipped"):
        step.finished_at = now
    step.updated_at = now
    publish(
        uow,
        "run.step_updated",
        run.workspace_id,
        {"run_id": run.id, "step_id": step.id, "key": step.key, "status": step.status},
    )
    return step


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of a run's log; ``seq`` None: the next one."""

    text: str
    channel: str = "system"
    seq: int | None = None
    ts: datetime | None = None


def append_logs(uow: UnitOfWork, lease: Lease, lines: Iterable[LogLine]) -> list[RunLog]:
    """Append lines to the run's log as the lease holder; a ``seq`` already logged is ignored."""
    run = held(uow, lease)
    return write_logs(uow, run, lines)


def write_logs(uow: UnitOfWork, run: Run, lines: Iterable[LogLine]) -> list[RunLog]:
    """Append ``lines`` to ``run``'s log (the caller has checked it may)."""
    batch = list(lines)
    given = [line.seq for line in batch if line.seq is not None]
    seen = run_rows.logged_seqs(uow.db, run.id, given)
    next_seq = run_rows.last_log_seq(uow.db, run.id) + 1
    written: list[RunLog] = []
    for line in batch:
        seq = line.seq
        if seq is None:
            seq = next_seq
        if seq in seen:
            continue
        seen.add(seq)
        next_seq = max(next_seq, seq + 1)
        written.append(
            RunLog(
                run_id=run.id, seq=seq, channel=line.channel, ts=line.ts or uow.now, text=line.text
            )
        )
    run_rows.add_logs(uow.db, written)
    for row in written:
        publish(
            uow,
            "run.log",
            run.workspace_id,
            {"run_id": run.id, "seq": row.seq, "channel": row.channel, "text": row.text},
        )
    return written


# ── the reaper ──────────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class ReapReport:
    """What one sweep did, by move name (``requeue``, ``expire``, …)."""

    moves: dict[str, int] = field(default_factory=dict)

    def count(self, name: str) -> None:
        self.moves[name] = self.moves.get(name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.moves.values())


def reap(uow: UnitOfWork, policy: QueuePolicy = DEFAULT_POLICY, *, limit: int = 100) -> ReapReport:
    """One sweep: runs whose lease ended are re-queued (attempts left) or timed out; queued
    runs past their queue TTL and started runs past their maximum duration time out; runs
    still running after the cancel grace period are cancelled."""
    report = ReapReport()
    now = uow.now
    for run_id in run_rows.due_for_reaping(
        uow.db, now=now, cancel_grace_before=now - policy.cancel_grace, limit=limit
    ):
        run = run_rows.lock_if_free(uow.db, run_id)
        if run is None:
            continue
        name = _reaping_move(run, now, policy)
        if name is None:
            continue
        _apply_reaping(uow, run, name)
        report.count(name)
    return report


def _reaping_move(run: Run, now: datetime, policy: QueuePolicy) -> str | None:
    lease_ended = (
        run.status in LEASED and run.lease_expires_at is not None and run.lease_expires_at <= now
    )
    if run.status == run_states.RUNNING and run.cancel_requested:
        requested = run.cancel_requested_at or now
        if lease_ended or requested <= now - policy.cancel_grace:
            return "force_cancel"
    started = run.status in (run_states.CLAIMED, run_states.RUNNING)
    if started and run.deadline_at is not None and run.deadline_at <= now:
        return "overrun"
    if lease_ended:
        return "requeue" if run.attempt < run.max_attempts else "expire"
    queued = run.status == run_states.QUEUED
    if queued and run.queue_expires_at is not None and run.queue_expires_at <= now:
        return "queue_timeout"
    return None


_REAPING_ERRORS = {
    "expire": ("lease_expired", "The run's lease expired on its last attempt."),
    "queue_timeout": ("queue_ttl_passed", "No executor claimed the run within the queue TTL."),
    "overrun": ("max_duration_exceeded", "The run ran longer than its maximum duration."),
}


def _apply_reaping(uow: UnitOfWork, run: Run, name: str) -> None:
    if name in _REAPING_ERRORS:
        code, message = _REAPING_ERRORS[name]
        run.error = {"code": code, "message": message}
    if name == "requeue":
        run.lease_owner = None
        run.lease_expires_at = None
        run.worker_id = None
        run.available_at = uow.now
    move(uow, run, name)
