"""Agent and workflow queries: live lookups, filtered lists, version numbering under a lock,
and the runs that keep a definition from being deleted.

An agent or workflow with ``deleted_at`` set is gone for every function here: it is not
found, listed or owned (its row and versions stay, for the runs that name them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from server.storage.common import Cursor, Order, apply_keyset
from server.storage.definition_models import Agent, Workflow, WorkflowVersion
from server.storage.run_models import Run

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "active_runs",
    "agent_workspace",
    "count_definitions",
    "count_versions",
    "find_live",
    "get_live",
    "get_version",
    "list_definitions",
    "list_versions",
    "lock",
    "workflow_workspace",
]

Definition = TypeVar("Definition", Agent, Workflow)

# Runs in these states hold their source: it cannot be deleted under them.
ACTIVE_RUN_STATUSES = ("queued", "claimed", "running", "waiting")


def _workspace_of(db: Session, model: type[Agent] | type[Workflow], item_id: str) -> str | None:
    stmt = select(model.workspace_id).where(model.id == item_id, model.deleted_at.is_(None))
    return db.execute(stmt).scalar_one_or_none()


def agent_workspace(db: Session, agent_id: str) -> str | None:
    """The workspace of the live agent ``agent_id`` (the owner lookup of ``/agents/…``)."""
    return _workspace_of(db, Agent, agent_id)


def workflow_workspace(db: Session, workflow_id: str) -> str | None:
    """The workspace of the live workflow ``workflow_id`` (the owner lookup of ``/workflows/…``)."""
    return _workspace_of(db, Workflow, workflow_id)


def get_live(
    db: Session, model: type[Definition], item_id: str, workspace_id: str
) -> Definition | None:
    """The agent or workflow, if it is this workspace's and not deleted."""
    stmt = select(model).where(
        model.id == item_id, model.workspace_id == workspace_id, model.deleted_at.is_(None)
    )
    return db.scalars(stmt).first()


def find_live(
    db: Session, model: type[Definition], workspace_id: str, key: str
) -> Definition | None:
    """The workspace's agent or workflow with this key, if any (not deleted)."""
    stmt = select(model).where(
        model.workspace_id == workspace_id, model.key == key, model.deleted_at.is_(None)
    )
    return db.scalars(stmt).first()


def lock(db: Session, item: Definition) -> Definition:
    """Hold ``item``'s row until the transaction ends, and read it again under the lock, so
    edits that number versions run one at a time.

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE``. SQLite: a no-op ``UPDATE`` of the row, which
    takes the database's write lock.
    """
    model = type(item)
    if db.get_bind().dialect.name == "sqlite":
        db.execute(
            update(model)
            .where(model.id == item.id)
            .values(updated_at=model.updated_at)
            .execution_options(synchronize_session=False)
        )
        db.refresh(item)
        return item
    stmt = (
        select(model)
        .where(model.id == item.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return db.scalars(stmt).one()


def _filters(
    model: type[Agent] | type[Workflow], workspace_id: str, q: str | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        model.workspace_id == workspace_id,
        model.deleted_at.is_(None),
    ]
    if q is not None:
        escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        pattern = f"%{escaped}%"
        where.append(
            func.lower(model.key).like(pattern, escape="\\")
            | func.lower(model.name).like(pattern, escape="\\")
        )
    return where


def list_definitions(
    db: Session,
    model: type[Definition],
    workspace_id: str,
    *,
    q: str | None,
    after: Cursor | None,
    order: Order,
    limit: int,
) -> Sequence[Definition]:
    """The workspace's live agents or workflows whose key or name contains ``q``, keyset on
    ``(created_at, id)``: up to ``limit + 1`` rows."""
    stmt = apply_keyset(
        select(model).where(*_filters(model, workspace_id, q)),
        model.created_at,
        model.id,
        after=after,
        order=order,
        limit=limit,
    )
    return db.scalars(stmt).all()


def count_definitions(
    db: Session, model: type[Agent] | type[Workflow], workspace_id: str, *, q: str | None
) -> int:
    stmt = select(func.count()).select_from(model).where(*_filters(model, workspace_id, q))
    return db.scalar(stmt) or 0


def get_version(db: Session, workflow_id: str, version: int) -> WorkflowVersion | None:
    stmt = select(WorkflowVersion).where(
        WorkflowVersion.workflow_id == workflow_id, WorkflowVersion.version == version
    )
    return db.scalars(stmt).first()


def list_versions(
    db: Session, workflow_id: str, *, after: int | None, order: Order, limit: int
) -> Sequence[WorkflowVersion]:
    """A workflow's versions by number (``desc``: newest first), after the number ``after``:
    up to ``limit + 1`` rows."""
    stmt = select(WorkflowVersion).where(WorkflowVersion.workflow_id == workflow_id)
    if after is not None:
        stmt = stmt.where(
            WorkflowVersion.version < after if order == "desc" else WorkflowVersion.version > after
        )
    column = WorkflowVersion.version.desc() if order == "desc" else WorkflowVersion.version.asc()
    return db.scalars(stmt.order_by(column).limit(limit + 1)).all()


def count_versions(db: Session, workflow_id: str) -> int:
    stmt = (
        select(func.count())
        .select_from(WorkflowVersion)
        .where(WorkflowVersion.workflow_id == workflow_id)
    )
    return db.scalar(stmt) or 0


def active_runs(db: Session, workspace_id: str, source_type: str, source_id: str) -> int:
    """How many runs of this agent or workflow are queued, claimed, running or waiting."""
    stmt = (
        select(func.count())
        .select_from(Run)
        .where(
            Run.workspace_id == workspace_id,
            Run.source_type == source_type,
            Run.source_id == source_id,
            Run.status.in_(ACTIVE_RUN_STATUSES),
        )
    )
    return db.scalar(stmt) or 0
