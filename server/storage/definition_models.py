"""The ORM schema of what runs execute: agents, workflows and their versions.

Conventions are those of ``server.storage.models``. What the schema itself guarantees:

* ``{workspace_id, key}`` is unique among a workspace's agents (and among its workflows) that
  are not deleted (partial unique indexes), so a deleted definition's key may be taken again
  while its row is kept for the runs that name it;
* ``{workflow_id, version}`` is unique, so two edits can never both make version N; an edit
  also holds the workflow row's lock while it numbers its version
  (``server.storage.definitions.lock``).

A workflow row carries its current steps (a copy of its newest version's), so reading a
workflow needs one row; a version is never changed once written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
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
from server.storage.run_models import RUN_EXECUTORS
from server.storage.types import JSONDocument, UTCDateTime

__all__ = ["Agent", "Workflow", "WorkflowVersion"]

KEY = String(40)
NAME = String(200)
DESCRIPTION = String(2000)
MODEL = String(200)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _live_key_index(table: str) -> Index:
    """``{workspace_id, key}`` unique among the rows not deleted."""
    return Index(
        f"uq_{table}_workspace_id_key_live",
        "workspace_id",
        "key",
        unique=True,
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    )


class Agent(Base):
    """A model with instructions (inline, or a prompt's live version) and tool definitions."""

    __tablename__ = "agents"
    __table_args__ = (
        _live_key_index("agents"),
        Index("ix_agents_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        CheckConstraint(_one_of("executor", RUN_EXECUTORS), name="executor"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(KEY)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str | None] = mapped_column(DESCRIPTION)
    # The system prompt: a prompt of the workspace (its live version, rendered with the run's
    # variables), then inline text; not a foreign key: a deleted prompt fails the run, not the row.
    prompt_id: Mapped[str | None] = mapped_column(ID)
    instructions: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str] = mapped_column(MODEL)
    # [{name, description, parameters}], offered to the model.
    tools: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument())
    executor: Mapped[str] = mapped_column(String(16))
    # The creating user or API key; not a foreign key: the agent outlives its creator.
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Workflow(Base):
    """A list of typed steps, numbered as versions; ``version`` is the newest."""

    __tablename__ = "workflows"
    __table_args__ = (
        _live_key_index("workflows"),
        Index("ix_workflows_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        CheckConstraint(_one_of("executor", RUN_EXECUTORS), name="executor"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(KEY)
    name: Mapped[str] = mapped_column(NAME)
    description: Mapped[str | None] = mapped_column(DESCRIPTION)
    executor: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument())
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WorkflowVersion(Base):
    """An immutable snapshot of a workflow's steps, numbered 1, 2, … per workflow."""

    __tablename__ = "workflow_versions"
    __table_args__ = (
        UniqueConstraint("workflow_id", "version"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workflow_id: Mapped[str] = mapped_column(ID, ForeignKey("workflows.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    steps: Mapped[list[dict[str, Any]]] = mapped_column(JSONDocument())
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
