"""Runs as users see them: read, list, cancel, answer, retry, the trace and statistics.

Every change goes through the state machine (``server.domain.run_states``) on the run's row
under its lock, so a user's cancel and an executor's completion never both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from server.domain import run_queue, run_states
from server.domain.errors import NotFound
from server.domain.events import publish
from server.domain.listing import Window
from server.domain.run_queue import DEFAULT_POLICY, NewRun, QueuePolicy
from server.domain.unit import UnitOfWork
from server.storage import rows
from server.storage import runs as run_rows
from server.storage.run_models import Run, RunStep

__all__ = [
    "RunQuery",
    "StatsGroup",
    "cancel_run",
    "get_run",
    "list_runs",
    "retry_run",
    "run_stats",
    "run_trace",
    "submit_input",
]

# The window ``run_stats`` covers when the caller gives none.
DEFAULT_STATS_WINDOW = timedelta(hours=24)


def get_run(uow: UnitOfWork, workspace_id: str, run_id: str) -> Run:
    """The workspace's run ``run_id``."""
    run = rows.get(uow.db, Run, run_id, workspace_id=workspace_id)
    if run is None:
        raise NotFound("Run not found.")
    return run


@dataclass(frozen=True, slots=True)
class RunQuery:
    """A run list's filters (None: any)."""

    status: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    worker_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _filter(workspace_id: str, query: RunQuery) -> run_rows.RunFilter:
    return run_rows.RunFilter(
        workspace_id=workspace_id,
        status=query.status,
        source_type=query.source_type,
        source_id=query.source_id,
        worker_id=query.worker_id,
        created_from=query.created_from,
        created_to=query.created_to,
    )


def list_runs(
    uow: UnitOfWork, workspace_id: str, query: RunQuery, *, window: Window
) -> tuple[Sequence[Run], int | None]:
    """The workspace's runs matching ``query`` in ``window``, and their count if asked."""
    found = _filter(workspace_id, query)
    page = run_rows.list_runs(
        uow.db, found, after=window.after, order=window.direction, limit=window.limit
    )
    return page, run_rows.count_runs(uow.db, found) if window.include_total else None


def _locked(uow: UnitOfWork, workspace_id: str, run_id: str) -> Run:
    run = run_rows.lock(uow.db, run_id, workspace_id=workspace_id)
    if run is None:
        raise NotFound("Run not found.")
    return run


def cancel_run(uow: UnitOfWork, workspace_id: str, run_id: str) -> Run:
    """Cancel at once what is not executing; ask the holder of a running run to stop (the
    reaper cancels it after the grace period if it does not)."""
    run = _locked(uow, workspace_id, run_id)
    source = run.status
    if run.status == run_states.RUNNING and run.lease_owner is not None:
        if not run.cancel_requested:
            run.cancel_requested = True
            run.cancel_requested_at = uow.now
            run.updated_at = uow.now
    elif run.status == run_states.RUNNING:  # resumed but not yet claimed again: nobody to ask
        run.cancel_requested = True
        run.cancel_requested_at = uow.now
        run_queue.move(uow, run, "force_cancel")
    else:
        run_queue.move(uow, run, "cancel")
    uow.audit(
        "run.cancelled",
        workspace_id=run.workspace_id,
        target_type="run",
        target_id=run.id,
        summary=f"{uow.actor.label} cancelled run {run.id}",
        metadata={"from": source, "status": run.status},
    )
    return run


APPROVAL_REJECTED = {"code": "approval_rejected", "message": "The approval was rejected."}


def _rejects(answer: Any) -> bool:
    return isinstance(answer, dict) and answer.get("approved") is False


def submit_input(uow: UnitOfWork, workspace_id: str, run_id: str, answer: Any) -> Run:
    """Resume a waiting run: ``answer`` becomes the waiting step's output, and the run is
    running again (claimable, when its executor had let it go while it waited)."""
    run = _locked(uow, workspace_id, run_id)
    run_states.target("resume", run.status)  # 409 unless waiting
    waiting = [step for step in run_rows.steps_of(uow.db, run.id) if step.status == "waiting"]
    for step in waiting:
        # An approval answered {"approved": false} fails its step at once: a reader never sees
        # a rejected approval as succeeded while the run waits to be picked up again.
        rejected = step.type == "approval" and _rejects(answer)
        step.status = "failed" if rejected else "succeeded"
        step.error = dict(APPROVAL_REJECTED) if rejected else None
        step.output = answer
        step.finished_at = uow.now
        step.updated_at = uow.now
        publish(
            uow,
            "run.step_updated",
            run.workspace_id,
            {"run_id": run.id, "step_id": step.id, "key": step.key, "status": step.status},
        )
    if run.lease_owner is None:
        run.available_at = uow.now
    waited_since = run_rows.last_entered(uow.db, run.id, run_states.WAITING)
    if run.deadline_at is not None and waited_since is not None:
        run.deadline_at += uow.now - waited_since  # time spent waiting is not execution time
    run_queue.move(uow, run, "resume")
    uow.audit(
        "run.input_submitted",
        workspace_id=run.workspace_id,
        target_type="run",
        target_id=run.id,
        summary=f"{uow.actor.label} answered run {run.id}",
        metadata={"steps": [step.key for step in waiting]},
    )
    return run


def retry_run(
    uow: UnitOfWork,
    workspace_id: str,
    run_id: str,
    *,
    idempotency_key: str | None = None,
    policy: QueuePolicy = DEFAULT_POLICY,
) -> run_queue.Enqueued:
    """Queue a new run of the same source, input and version, ``retry_of`` this ended one."""
    run = _locked(uow, workspace_id, run_id)
    if run.status not in run_states.TERMINAL:
        raise run_states.refuse(
            run.status, f"Only a run that has ended can be retried ({run.status})."
        )
    enqueued = run_queue.enqueue(
        uow,
        NewRun(
            workspace_id=run.workspace_id,
            source_type=run.source_type,
            source_id=run.source_id,
            input=run.input,
            variables=run.variables,
            executor=run.executor,
            workflow_version=run.workflow_version,
            labels=run.labels,
            pinned_worker_id=run.pinned_worker_id,
            retry_of=run.id,
            idempotency_key=idempotency_key,
            request_fingerprint=run_queue.fingerprint("retryRun", run.id),
        ),
        policy,
    )
    if not enqueued.replayed:
        uow.audit(
            "run.retried",
            workspace_id=run.workspace_id,
            target_type="run",
            target_id=enqueued.run.id,
            summary=f"{uow.actor.label} retried run {run.id}",
            metadata={"retry_of": run.id},
        )
    return enqueued


# ── the trace ───────────────────────────────────────────────────────────────────────────────


@dataclass(slots=True)
class StepNode:
    """A step with the steps nested in it (what the trace shows)."""

    step: RunStep
    children: list[StepNode] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.step, name)


@dataclass(frozen=True, slots=True)
class Trace:
    """A run's steps as a tree."""

    run_id: str
    steps: list[StepNode]


def run_trace(uow: UnitOfWork, workspace_id: str, run_id: str) -> Trace:
    """The run's steps as a tree, in the order they first appeared."""
    run = get_run(uow, workspace_id, run_id)
    nodes = {step.id: StepNode(step) for step in run_rows.steps_of(uow.db, run.id)}
    roots: list[StepNode] = []
    for node in nodes.values():
        parent = nodes.get(node.step.parent_step_id or "")
        (parent.children if parent is not None and parent is not node else roots).append(node)
    return Trace(run.id, roots)


# ── statistics ──────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class StatsGroup:
    """One group of ``run_stats``."""

    key: str
    runs: int
    succeeded: int
    failed: int
    success_rate: float | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost_usd: float
    avg_duration_ms: float | None


@dataclass(frozen=True, slots=True)
class RunStats:
    """Statistics of the runs created in ``[from, to)``."""

    created_from: datetime
    created_to: datetime
    group_by: str
    groups: list[StatsGroup]

    api_names = {"from": "created_from", "to": "created_to"}


def run_stats(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    created_from: datetime | None,
    created_to: datetime | None,
    group_by: str,
) -> RunStats:
    """Counts, outcomes, usage and durations of the workspace's runs created in the window
    (default: the last 24 hours), grouped by ``status``, ``source`` or ``provider``."""
    end = created_to or uow.now
    start = created_from or end - DEFAULT_STATS_WINDOW
    found = run_rows.RunFilter(workspace_id=workspace_id, created_from=start, created_to=end)
    if group_by == "provider":
        totals = run_rows.run_totals_by_provider(uow.db, found)
    else:
        totals = run_rows.run_totals(uow.db, found, group_by)
    groups = [
        StatsGroup(
            key=t.key or "",
            runs=t.count,
            succeeded=t.succeeded,
            failed=t.failed,
            success_rate=(t.succeeded / t.finished) if t.finished else None,
            prompt_tokens=t.prompt_tokens,
            completion_tokens=t.completion_tokens,
            total_tokens=t.prompt_tokens + t.completion_tokens,
            cost_usd=round(t.cost_usd, 6),
            avg_duration_ms=round(t.duration_s * 1000 / t.timed, 3) if t.timed else None,
        )
        for t in totals
    ]
    return RunStats(start, end, group_by, groups)
