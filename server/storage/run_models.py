"""The ORM schema of runs: the run (also the queue entry), its steps, logs and artifacts.

Conventions are those of ``server.storage.models``. What the schema itself guarantees:

* the queue is the ``runs`` table: a run is claimable while ``status = 'queued'``; a partial
  index on queued rows keeps the claimable set small however many finished runs there are;
* each claim mints a new ``lease_id``: every write by a lease holder (heartbeat, step, log,
  completion) names it and is refused once the lease was lost (fencing);
* ``{workspace_id, source_type, source_id, idempotency_key}`` is unique among keyed runs, so two
  requests with one ``Idempotency-Key`` can never both create a run;
* a step is unique per ``{run_id, key}``, a log line per ``{run_id, seq}``;
* every change of a run's status appends a ``run_transitions`` row in the same transaction: the
  stored history, one legal path through the state machine (``server.domain.run_states``);
* runs, steps and logs are never deleted; an artifact's bytes live outside the database.

Runs keep no foreign key to their source (agent, workflow, trigger, prompt): they outlive it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.models import ID, Base
from server.storage.types import JSONDocument, UTCDateTime

__all__ = [
    "ARTIFACT_KINDS",
    "CLAIMABLE",
    "LOG_CHANNELS",
    "RUN_EXECUTORS",
    "RUN_SOURCE_TYPES",
    "RUN_STATUSES",
    "STEP_STATUSES",
    "Artifact",
    "Run",
    "RunLog",
    "RunStep",
    "RunTransition",
]

RUN_STATUSES = (
    "queued",
    "claimed",
    "running",
    "waiting",
    "succeeded",
    "failed",
    "cancelled",
    "timed_out",
)
RUN_SOURCE_TYPES = ("agent", "workflow", "trigger", "issue", "playground")
RUN_EXECUTORS = ("server", "worker")
STEP_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "waiting")
LOG_CHANNELS = ("stdout", "stderr", "system", "agent", "tool")
ARTIFACT_KINDS = ("file", "screenshot", "report", "output")


# The claimable set (the partial index's predicate; the claim's own condition is the same).
CLAIMABLE = "status = 'queued' OR (status = 'running' AND lease_owner IS NULL)"


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _usage(prompt_tokens: int, completion_tokens: int, cost_usd: float) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost_usd": cost_usd,
    }


class Run(Base):
    """One execution of an agent, a workflow, a trigger, an issue dispatch or the playground.

    Also the queue entry: ``queued`` runs are claimed (``lease_id``, ``lease_owner``,
    ``lease_expires_at``), heartbeated and completed by whoever holds the lease.
    """

    api_names: ClassVar[Mapping[str, str]] = {"source": "source_ref"}

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint(_one_of("status", RUN_STATUSES), name="status"),
        CheckConstraint(_one_of("source_type", RUN_SOURCE_TYPES), name="source_type"),
        CheckConstraint(_one_of("executor", RUN_EXECUTORS), name="executor"),
        CheckConstraint("attempt >= 0 AND attempt <= max_attempts", name="attempt"),
        Index("ix_runs_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        Index("ix_runs_source_type_source_id_status", "source_type", "source_id", "status"),
        Index("ix_runs_worker_id_status", "worker_id", "status"),
        # The claimable set in queue order: queued runs, and running runs no one holds (a
        # server run resumed by its input after it waited).
        Index(
            "ix_runs_claimable",
            "executor",
            "available_at",
            "id",
            sqlite_where=text(CLAIMABLE),
            postgresql_where=text(CLAIMABLE),
        ),
        # Leases the reaper looks at.
        Index(
            "ix_runs_leased",
            "lease_expires_at",
            sqlite_where=text("lease_expires_at IS NOT NULL"),
            postgresql_where=text("lease_expires_at IS NOT NULL"),
        ),
        Index(
            "uq_runs_idempotency_key",
            "workspace_id",
            "source_type",
            "source_id",
            "idempotency_key",
            unique=True,
            sqlite_where=text("idempotency_key IS NOT NULL"),
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_runs_retry_of", "retry_of"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    # What it runs: {type, id}; a workflow run also records the version it used.
    source_type: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str | None] = mapped_column(ID)
    workflow_version: Mapped[int | None] = mapped_column(Integer)
    # Who executes it: the server's executor, or a pull worker (eligible by labels and pin).
    executor: Mapped[str] = mapped_column(String(16))
    worker_id: Mapped[str | None] = mapped_column(ID)
    labels: Mapped[list[str]] = mapped_column(JSONDocument())
    pinned_worker_id: Mapped[str | None] = mapped_column(ID)
    status: Mapped[str] = mapped_column(String(16))
    # Claims so far (0 while never claimed); past ``max_attempts`` a lost lease is timed_out.
    attempt: Mapped[int] = mapped_column(Integer)
    max_attempts: Mapped[int] = mapped_column(Integer)
    retry_of: Mapped[str | None] = mapped_column(ID)
    input: Mapped[Any] = mapped_column(JSONDocument())
    variables: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    output: Mapped[Any | None] = mapped_column(JSONDocument())
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    # Usage summed over the run's model calls (columns, so stats can sum them).
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Double, default=0.0)
    # The lease: a fresh ``lease_id`` per claim (the fencing token), its holder (an executor
    # process or a worker) and its end.
    lease_id: Mapped[str | None] = mapped_column(String(40))
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Limits: a queued run past ``queue_expires_at`` and a started run past ``deadline_at``
    # (its start plus the maximum duration) are timed_out.
    queue_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    max_duration_s: Mapped[int | None] = mapped_column(Integer)
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Idempotency-Key of the creating request, the fingerprint of its body and the status
    # it was answered with (a replay answers the same).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_status: Mapped[int | None] = mapped_column(Integer)
    # The run token (``rtk_``), stored as SHA-256 only.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The creating user, API key or trigger; not a foreign key: the run outlives it.
    created_by: Mapped[str | None] = mapped_column(String(64))
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it last became claimable (queued, re-queued or resumed): the queue's order.
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def source_ref(self) -> dict[str, str | None]:
        """What the run runs: ``{type, id}``."""
        return {"type": self.source_type, "id": self.source_id}

    @property
    def usage(self) -> dict[str, Any]:
        """``{prompt_tokens, completion_tokens, total_tokens, cost_usd}`` so far."""
        return _usage(self.prompt_tokens or 0, self.completion_tokens or 0, self.cost_usd or 0.0)


class RunTransition(Base):
    """One change of a run's status, in order (``id``): from, to, under which attempt and lease,
    and why (``claim``, ``complete``, ``cancel``, ``lease_expired``, …)."""

    __tablename__ = "run_transitions"
    __table_args__ = (Index("ix_run_transitions_run_id_id", "run_id", "id"),)

    # INTEGER PRIMARY KEY on SQLite, where only that spelling auto-increments.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    from_status: Mapped[str | None] = mapped_column(String(16))
    to_status: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer)
    lease_id: Mapped[str | None] = mapped_column(String(40))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class RunStep(Base):
    """One step of a run's trace; ``parent_step_id`` nests steps (a task's subtasks).

    ``lease_id`` is the lease under which the step was last written: a step is written only by
    the run's current lease holder, and a succeeded step is not written again.
    """

    __tablename__ = "run_steps"
    __table_args__ = (
        UniqueConstraint("run_id", "key"),
        CheckConstraint(_one_of("status", STEP_STATUSES), name="status"),
        Index("ix_run_steps_run_id_position", "run_id", "position"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    workspace_id: Mapped[str] = mapped_column(ID)
    parent_step_id: Mapped[str | None] = mapped_column(ID)
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    # Order of first appearance within the run.
    position: Mapped[int] = mapped_column(Integer)
    input: Mapped[Any | None] = mapped_column(JSONDocument())
    output: Mapped[Any | None] = mapped_column(JSONDocument())
    error: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Double, default=0.0)
    attempt: Mapped[int] = mapped_column(Integer)
    lease_id: Mapped[str | None] = mapped_column(String(40))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def usage(self) -> dict[str, Any]:
        """``{prompt_tokens, completion_tokens, total_tokens, cost_usd}`` of this step."""
        return _usage(self.prompt_tokens or 0, self.completion_tokens or 0, self.cost_usd or 0.0)


class RunLog(Base):
    """One line of a run's log; ``seq`` orders a run's lines and a repeated ``seq`` is ignored."""

    __tablename__ = "run_logs"
    __table_args__ = (
        UniqueConstraint("run_id", "seq"),
        CheckConstraint(_one_of("channel", LOG_CHANNELS), name="channel"),
        Index("ix_run_logs_run_id_channel_seq", "run_id", "channel", "seq"),
    )

    # INTEGER PRIMARY KEY on SQLite, where only that spelling auto-increments.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime] = mapped_column(UTCDateTime())
    text: Mapped[str] = mapped_column(Text)


class Artifact(Base):
    """A file a run produced; the row holds its metadata, ``storage_key`` names its bytes in
    the artifact store (``server.storage.artifact_files``)."""

    __tablename__ = "artifacts"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ARTIFACT_KINDS), name="kind"),
        Index("ix_artifacts_run_id_created_at_id", "run_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID)
    run_id: Mapped[str] = mapped_column(ID, ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))
    content_type: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
