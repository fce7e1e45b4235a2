"""Runs as a queue: the claim, row locks, the stored history, and the run lists and stats.

The claim is one statement on both databases. PostgreSQL: a materialized CTE picks the oldest
claimable rows ``FOR UPDATE SKIP LOCKED`` (concurrent claimers skip each other's rows instead
of waiting on them; materialized, so the planner cannot run the pick twice and claim more
than asked), and ``UPDATE … FROM`` it ``RETURNING`` the claimed rows. SQLite has no row locks:
the claimer's transaction began ``BEGIN IMMEDIATE`` (it holds the database's write lock), and
its ``UPDATE … WHERE id IN (oldest claimable) AND <still claimable> RETURNING`` can claim only
what is claimable when it runs. Either way, a run is claimed by one lease at a time.

Every other write a lease holder makes reads the run under ``lock`` first (``FOR UPDATE`` on
PostgreSQL; the write transaction on SQLite), so the fencing check and the write see the same
row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from server.storage.common import Cursor, Order, apply_keyset
from server.storage.gateway_models import GatewayBackend
from server.storage.gateway_traffic import GatewayRequest
from server.storage.models import Workspace
from server.storage.run_models import CLAIMABLE, Artifact, Run, RunLog, RunStep, RunTransition

__all__ = [
    "RunFilter",
    "RunTotals",
    "add_keyed",
    "add_logs",
    "artifact_workspace",
    "claim_next",
    "count_logs_after",
    "count_runs",
    "delete_artifact",
    "due_for_reaping",
    "forget_key",
    "history",
    "last_entered",
    "list_runs",
    "lock",
    "lock_if_free",
    "record_transition",
    "run_totals",
    "run_totals_by_provider",
    "run_workspace",
]


def run_workspace(db: Session, run_id: str) -> str | None:
    """The workspace of the run ``run_id``, or None when there is none."""
    return db.execute(select(Run.workspace_id).where(Run.id == run_id)).scalar_one_or_none()


def artifact_workspace(db: Session, artifact_id: str) -> str | None:
    """The workspace of the artifact ``artifact_id``, or None when there is none."""
    stmt = select(Artifact.workspace_id).where(Artifact.id == artifact_id)
    return db.execute(stmt).scalar_one_or_none()


def delete_artifact(db: Session, artifact: Artifact) -> None:
    """Remove an artifact's row (its bytes are the file store's)."""
    db.delete(artifact)
    db.flush()


def _is_postgresql(db: Session) -> bool:
    return db.get_bind().dialect.name == "postgresql"


def lock(db: Session, run_id: str, **scope: Any) -> Run | None:
    """The run, read again and held until the transaction ends (``FOR UPDATE`` on PostgreSQL;
    on SQLite the caller's write transaction holds the database)."""
    stmt = select(Run).where(Run.id == run_id)
    for name, value in scope.items():
        stmt = stmt.where(getattr(Run, name) == value)
    if _is_postgresql(db):
        stmt = stmt.with_for_update()
    return db.scalars(stmt.execution_options(populate_existing=True)).first()


def lock_if_free(db: Session, run_id: str) -> Run | None:
    """``lock`` without waiting: None when another transaction holds the row (PostgreSQL's
    ``SKIP LOCKED``), so a background sweep passes over runs their holders are writing."""
    stmt = select(Run).where(Run.id == run_id)
    if _is_postgresql(db):
        stmt = stmt.with_for_update(skip_locked=True)
    return db.scalars(stmt.execution_options(populate_existing=True)).first()


def hold_keys(db: Session, workspace_id: str) -> None:
    """Serialize the keyed run creations of a workspace until the transaction ends: the
    unique index cannot hold a key whose run names no source (``NULL`` is distinct from
    ``NULL``), a playground template's say. On PostgreSQL the workspace row is locked; on
    SQLite the caller's write transaction already holds the database."""
    if _is_postgresql(db):
        db.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())


def add_keyed(db: Session, run: Run) -> bool:
    """Insert a run that carries an ``Idempotency-Key``; False (and nothing written) when a
    concurrent request stored one with the same key first."""
    try:
        with db.begin_nested():
            db.add(run)
    except IntegrityError:
        return False
    return True


def forget_key(db: Session, run: Run) -> None:
    """Free ``run``'s Idempotency-Key (it is older than the window that remembers it)."""
    run.idempotency_key = None
    db.flush()


def add_logs(db: Session, lines: Sequence[RunLog]) -> None:
    """Insert log lines (their ``seq`` checked new by the caller, under the run's lock)."""
    db.add_all(lines)
    db.flush()


def record_transition(
    db: Session, run: Run, source: str | None, move: str, *, now: datetime
) -> None:
    """Append the run's change from ``source`` to its current status to its history."""
    db.add(
        RunTransition(
            run_id=run.id,
            from_status=source,
            to_status=run.status,
            event=move,
            attempt=run.attempt,
            lease_id=run.lease_id,
            at=now,
        )
    )


def history(db: Session, run_id: str) -> Sequence[RunTransition]:
    """The run's status changes, oldest first."""
    stmt = select(RunTransition).where(RunTransition.run_id == run_id).order_by(RunTransition.id)
    return db.scalars(stmt).all()


def last_entered(db: Session, run_id: str, status: str) -> datetime | None:
    """When the run last entered ``status`` (from its history)."""
    stmt = (
        select(RunTransition.at)
        .where(RunTransition.run_id == run_id, RunTransition.to_status == status)
        .order_by(RunTransition.id.desc())
        .limit(1)
    )
    return db.scalar(stmt)


def claim_next(
    db: Session,
    *,
    executor: str,
    owner: str,
    lease_prefix: str,
    now: datetime,
    expires_at: datetime,
    limit: int = 1,
    worker_id: str | None = None,
) -> list[tuple[Run, str]]:
    """Claim up to ``limit`` of the oldest claimable runs for ``executor``: each gets a fresh
    lease held by ``owner`` until ``expires_at``, its id ``lease_prefix`` (random, new for each
    claim) followed by the run's id. A queued run becomes ``claimed`` with one more attempt; a
    run resumed after waiting stays ``running``.

    Returns each claimed run with the status it had before (history is the caller's).
    """
    was_queued = Run.status == "queued"
    values: dict[str, Any] = {
        "status": case((was_queued, "claimed"), else_=Run.status),
        "attempt": case((was_queued, Run.attempt + 1), else_=Run.attempt),
        "lease_id": literal(lease_prefix) + Run.id,
        "lease_owner": owner,
        "lease_expires_at": expires_at,
        "worker_id": worker_id,
        "updated_at": now,
    }
    claimable = and_(Run.executor == executor, text(f"({CLAIMABLE})"))
    pick = select(Run.id).where(claimable).order_by(Run.available_at, Run.id).limit(limit)
    if _is_postgresql(db):
        chosen = pick.with_for_update(skip_locked=True).cte("chosen").prefix_with("MATERIALIZED")
        stmt = update(Run).where(Run.id == chosen.c.id)
    else:
        stmt = update(Run).where(Run.id.in_(pick.scalar_subquery()), claimable)
    claimed = db.scalars(
        stmt.values(**values).returning(Run),
        execution_options={"populate_existing": True, "synchronize_session": False},
    ).all()
    return [(run, "queued" if run.status == "claimed" else run.status) for run in claimed]


def due_for_reaping(
    db: Session, *, now: datetime, cancel_grace_before: datetime, limit: int
) -> list[str]:
    """Ids of runs a sweep must look at: a lease that ended, a queue TTL or a maximum
    duration that passed, a cancellation whose grace period is over."""
    stmt = (
        select(Run.id)
        .where(
            or_(
                and_(Run.lease_expires_at.is_not(None), Run.lease_expires_at <= now),
                and_(Run.status == "queued", Run.queue_expires_at <= now),
                and_(Run.status.in_(("claimed", "running")), Run.deadline_at <= now),
                and_(
                    Run.status == "running",
                    Run.cancel_requested.is_(True),
                    Run.cancel_requested_at <= cancel_grace_before,
                ),
            )
        )
        .order_by(Run.updated_at)
        .limit(limit)
    )
    return list(db.scalars(stmt).all())


@dataclass(frozen=True, slots=True)
class RunFilter:
    """The typed filters of a run list (None: any)."""

    workspace_id: str
    status: str | None = None
    source_type: str | None = None
    source_id: str | None = None
    worker_id: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None


def _where(found: RunFilter) -> list[Any]:
    conditions: list[Any] = [Run.workspace_id == found.workspace_id]
    for column, value in (
        (Run.status, found.status),
        (Run.source_type, found.source_type),
        (Run.source_id, found.source_id),
        (Run.worker_id, found.worker_id),
    ):
        if value is not None:
            conditions.append(column == value)
    if found.created_from is not None:
        conditions.append(Run.created_at >= found.created_from)
    if found.created_to is not None:
        conditions.append(Run.created_at < found.created_to)
    return conditions


def list_runs(
    db: Session, found: RunFilter, *, after: Cursor | None, order: Order, limit: int
) -> Sequence[Run]:
    """Runs matching ``found``, keyset-paginated: up to ``limit + 1``."""
    stmt = select(Run).where(*_where(found))
    return db.scalars(
        apply_keyset(stmt, Run.created_at, Run.id, after=after, order=order, limit=limit)
    ).all()


def count_runs(db: Session, found: RunFilter) -> int:
    """How many runs match ``found``."""
    return db.scalar(select(func.count()).select_from(Run).where(*_where(found))) or 0


@dataclass(frozen=True, slots=True)
class RunTotals:
    """One group of a run statistic."""

    key: str | None
    count: int
    succeeded: int
    failed: int
    finished: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    # Sum of (finished_at - started_at) in seconds over runs that have both, and their count.
    duration_s: float
    timed: int


def run_totals(db: Session, found: RunFilter, group: str) -> list[RunTotals]:
    """Counts, outcomes, usage and durations of the runs matching ``found``, grouped by
    ``status`` or ``source`` (``type:id``) or not at all (``all``)."""
    if group == "status":
        key: Any = Run.status
    elif group == "source":
        key = Run.source_type + ":" + func.coalesce(Run.source_id, "")
    else:
        key = None
    timed = and_(Run.started_at.is_not(None), Run.finished_at.is_not(None))
    seconds = _seconds(db)
    columns = [
        func.count(),
        func.sum(case((Run.status == "succeeded", 1), else_=0)),
        func.sum(case((Run.status == "failed", 1), else_=0)),
        func.sum(case((Run.finished_at.is_not(None), 1), else_=0)),
        func.coalesce(func.sum(Run.prompt_tokens), 0),
        func.coalesce(func.sum(Run.completion_tokens), 0),
        func.coalesce(func.sum(Run.cost_usd), 0.0),
        func.coalesce(func.sum(case((timed, seconds), else_=None)), 0.0),
        func.sum(case((timed, 1), else_=0)),
    ]
    stmt = select(*([key] if key is not None else []), *columns).where(*_where(found))
    if key is not None:
        stmt = stmt.group_by(key).order_by(key)
    totals: list[RunTotals] = []
    for row in db.execute(stmt).all():
        values = list(row)
        group_key = str(values.pop(0)) if key is not None else None
        count, succeeded, failed, finished, prompt, completion, cost, duration, timed_n = values
        if not count:
            continue
        totals.append(
            RunTotals(
                key=group_key,
                count=int(count),
                succeeded=int(succeeded or 0),
                failed=int(failed or 0),
                finished=int(finished or 0),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
                cost_usd=float(cost or 0.0),
                duration_s=float(duration or 0.0),
                timed=int(timed_n or 0),
            )
        )
    return totals


def run_totals_by_provider(db: Session, found: RunFilter) -> list[RunTotals]:
    """``run_totals`` by the provider that answered the runs' model calls (the gateway's
    request log): runs, outcomes and durations of the runs each provider served, and the
    usage of that provider's calls."""
    served = (
        select(GatewayRequest.run_id, GatewayBackend.provider_id)
        .join(GatewayBackend, GatewayBackend.id == GatewayRequest.backend_id)
        .where(
            GatewayRequest.run_id.is_not(None), GatewayRequest.workspace_id == found.workspace_id
        )
        .distinct()
        .subquery()
    )
    timed = and_(Run.started_at.is_not(None), Run.finished_at.is_not(None))
    outcomes = db.execute(
        select(
            served.c.provider_id,
            func.count(),
            func.sum(case((Run.status == "succeeded", 1), else_=0)),
            func.sum(case((Run.status == "failed", 1), else_=0)),
            func.sum(case((Run.finished_at.is_not(None), 1), else_=0)),
            func.coalesce(func.sum(case((timed, _seconds(db)), else_=None)), 0.0),
            func.sum(case((timed, 1), else_=0)),
        )
        .join(Run, Run.id == served.c.run_id)
        .where(*_where(found))
        .group_by(served.c.provider_id)
    ).all()
    usage = {
        row[0]: row[1:]
        for row in db.execute(
            select(
                GatewayBackend.provider_id,
                func.coalesce(func.sum(GatewayRequest.prompt_tokens), 0),
                func.coalesce(func.sum(GatewayRequest.completion_tokens), 0),
                func.coalesce(func.sum(GatewayRequest.cost_usd), 0.0),
            )
            .join(GatewayBackend, GatewayBackend.id == GatewayRequest.backend_id)
            .join(Run, Run.id == GatewayRequest.run_id)
            .where(*_where(found))
            .group_by(GatewayBackend.provider_id)
        ).all()
    }
    totals = []
    for provider_id, count, succeeded, failed, finished, duration, timed_n in outcomes:
        prompt, completion, cost = usage.get(provider_id, (0, 0, 0.0))
        totals.append(
            RunTotals(
                key=str(provider_id),
                count=int(count),
                succeeded=int(succeeded or 0),
                failed=int(failed or 0),
                finished=int(finished or 0),
                prompt_tokens=int(prompt or 0),
                completion_tokens=int(completion or 0),
                cost_usd=float(cost or 0.0),
                duration_s=float(duration or 0.0),
                timed=int(timed_n or 0),
            )
        )
    return sorted(totals, key=lambda t: t.key or "")


def _seconds(db: Session) -> Any:
    """A run's seconds from start to finish, in the database's own arithmetic."""
    if _is_postgresql(db):
        return func.extract("epoch", Run.finished_at - Run.started_at)
    return (func.julianday(Run.finished_at) - func.julianday(Run.started_at)) * 86400.0


# ── steps and logs ──────────────────────────────────────────────────────────────────────────


def steps_of(db: Session, run_id: str) -> Sequence[RunStep]:
    """The run's steps in the order they first appeared."""
    stmt = select(RunStep).where(RunStep.run_id == run_id).order_by(RunStep.position, RunStep.id)
    return db.scalars(stmt).all()


def step_by_key(db: Session, run_id: str, key: str) -> RunStep | None:
    """The run's step ``key``."""
    stmt = select(RunStep).where(RunStep.run_id == run_id, RunStep.key == key)
    return db.scalars(stmt.execution_options(populate_existing=True)).first()


def next_step_position(db: Session, run_id: str) -> int:
    """The position after the run's last step."""
    last = db.scalar(select(func.max(RunStep.position)).where(RunStep.run_id == run_id))
    return 0 if last is None else int(last) + 1


def last_log_seq(db: Session, run_id: str) -> int:
    """The highest ``seq`` of the run's log (0 when empty)."""
    return int(db.scalar(select(func.max(RunLog.seq)).where(RunLog.run_id == run_id)) or 0)


def logged_seqs(db: Session, run_id: str, seqs: Sequence[int]) -> set[int]:
    """Which of ``seqs`` the run's log already has."""
    if not seqs:
        return set()
    stmt = select(RunLog.seq).where(RunLog.run_id == run_id, RunLog.seq.in_(list(seqs)))
    return set(db.scalars(stmt).all())


def logs_after(
    db: Session, run_id: str, *, after_seq: int, channel: str | None, limit: int
) -> Sequence[RunLog]:
    """Up to ``limit + 1`` lines of the run's log after ``after_seq``, in order."""
    stmt = select(RunLog).where(RunLog.run_id == run_id, RunLog.seq > after_seq)
    if channel is not None:
        stmt = stmt.where(RunLog.channel == channel)
    return db.scalars(stmt.order_by(RunLog.seq).limit(limit + 1)).all()


def count_logs_after(db: Session, run_id: str, *, after_seq: int, channel: str | None) -> int:
    """How many lines of the run's log follow ``after_seq`` (on ``channel``)."""
    stmt = (
        select(func.count())
        .select_from(RunLog)
        .where(RunLog.run_id == run_id, RunLog.seq > after_seq)
    )
    if channel is not None:
        stmt = stmt.where(RunLog.channel == channel)
    return db.scalar(stmt) or 0
