"""The ORM schema of prompts: the draft per ``{key, env}``, its published versions.

Conventions are those of ``server.storage.models``. Two rules live in the schema itself:

* ``{workspace_id, key, env}`` is unique among prompts not deleted (a partial unique index), so
  a deleted prompt's key and env may be taken again while its row and versions are kept;
* ``{prompt_id, version}`` is unique, so two publishes can never both make version N; each
  publish also holds the prompt row's lock while it numbers its version
  (``server.storage.prompts.lock_prompt``).

A prompt's rollout is a JSON document on its row (``None`` when unset), replaced whole.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.storage.models import ID, Base
from server.storage.types import JSONDocument, UTCDateTime

__all__ = ["Prompt", "PromptVersion"]

KEY = String(40)
ENV = String(32)
MODEL = String(200)
CATEGORY = String(64)


class Prompt(Base):
    """A prompt's draft and where it stands; ``deleted_at`` set means it is gone for the API."""

    __tablename__ = "prompts"
    __table_args__ = (
        Index(
            "uq_prompts_workspace_id_key_env_live",
            "workspace_id",
            "key",
            "env",
            unique=True,
            sqlite_where=text("deleted_at IS NULL"),
            postgresql_where=text("deleted_at IS NULL"),
        ),
        Index("ix_prompts_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        CheckConstraint("latest_version >= 0", name="latest_version"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(KEY)
    env: Mapped[str] = mapped_column(ENV)
    name: Mapped[str] = mapped_column(String(200))
    # The draft.
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(MODEL)
    category: Mapped[str | None] = mapped_column(CATEGORY)
    tags: Mapped[list[str]] = mapped_column(JSONDocument())
    variables: Mapped[list[str]] = mapped_column(JSONDocument())
    # Where it stands: the version served, the highest number so far, whether the draft
    # differs from the version served (true while nothing is published).
    live_version: Mapped[int | None] = mapped_column(Integer)
    latest_version: Mapped[int] = mapped_column(Integer)
    draft_changed: Mapped[bool] = mapped_column(Boolean)
    # {enabled, variant_a, variant_b, weight_a, sticky, updated_at}, or None.
    rollout: Mapped[dict[str, Any] | None] = mapped_column(JSONDocument())
    # The creating user or API key; not a foreign key: the prompt outlives its creator.
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def status(self) -> str:
        """``unpublished``, ``published`` (the draft is live) or ``changed``."""
        if self.live_version is None:
            return "unpublished"
        return "changed" if self.draft_changed else "published"


class PromptVersion(Base):
    """An immutable snapshot of a prompt's draft, numbered 1, 2, … per prompt."""

    __tablename__ = "prompt_versions"
    __table_args__ = (
        UniqueConstraint("prompt_id", "version"),
        CheckConstraint("version >= 1", name="version"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    prompt_id: Mapped[str] = mapped_column(ID, ForeignKey("prompts.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    label: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    content: Mapped[str] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(MODEL)
    category: Mapped[str | None] = mapped_column(CATEGORY)
    tags: Mapped[list[str]] = mapped_column(JSONDocument())
    variables: Mapped[list[str]] = mapped_column(JSONDocument())
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Its prompt, loaded with it (key and env are the prompt's and never change).
    prompt: Mapped[Prompt] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    @property
    def key(self) -> str:
        return self.prompt.key

    @property
    def env(self) -> str:
        return self.prompt.env
