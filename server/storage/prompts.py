"""Prompt queries: lookups of live prompts, filtered lists, version numbering under a lock.

A prompt with ``deleted_at`` set is gone for every function here: it is not found, listed,
fetched or owned (its versions stay, for the record).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    bindparam,
    exists,
    func,
    literal,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from server.storage.common import Cursor, Order, apply_keyset
from server.storage.models import Workspace
from server.storage.prompt_models import Prompt, PromptVersion

__all__ = [
    "SdkCandidate",
    "ServedVersion",
    "count_prompts",
    "count_versions",
    "find_live",
    "get_live",
    "get_version",
    "list_prompts",
    "list_versions",
    "lock_prompt",
    "prompt_workspace",
    "sdk_candidates",
    "served_version",
]


def prompt_workspace(db: Session, prompt_id: str) -> str | None:
    """The workspace of the prompt ``prompt_id``; None when there is none or it is deleted
    (the owner lookup of ``/prompts/{prompt_id}`` paths)."""
    stmt = select(Prompt.workspace_id).where(Prompt.id == prompt_id, Prompt.deleted_at.is_(None))
    return db.execute(stmt).scalar_one_or_none()


def get_live(db: Session, prompt_id: str, workspace_id: str) -> Prompt | None:
    """The prompt, if it is this workspace's and not deleted."""
    stmt = select(Prompt).where(
        Prompt.id == prompt_id, Prompt.workspace_id == workspace_id, Prompt.deleted_at.is_(None)
    )
    return db.scalars(stmt).first()


def find_live(db: Session, workspace_id: str, key: str, env: str) -> Prompt | None:
    """The workspace's prompt with this key in this env, if any (not deleted)."""
    stmt = select(Prompt).where(
        Prompt.workspace_id == workspace_id,
        Prompt.key == key,
        Prompt.env == env,
        Prompt.deleted_at.is_(None),
    )
    return db.scalars(stmt).first()


def lock_prompt(db: Session, prompt: Prompt) -> Prompt:
    """Hold ``prompt``'s row until the transaction ends, and read it again under the lock, so
    changes that number versions or compare the draft with the live version run one at a time.

    PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` (new versions referencing the row can still be
    inserted by the holder). SQLite: a no-op ``UPDATE`` of the row, which takes the database's
    write lock.
    """
    if db.get_bind().dialect.name == "sqlite":
        db.execute(
            update(Prompt)
            .where(Prompt.id == prompt.id)
            .values(latest_version=Prompt.latest_version)
            .execution_options(synchronize_session=False)
        )
        db.refresh(prompt)
        return prompt
    stmt = (
        select(Prompt)
        .where(Prompt.id == prompt.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return db.scalars(stmt).one()


def _filters(
    workspace_id: str,
    *,
    q: str | None,
    env: str | None,
    category: str | None,
    tag: str | None,
    updated_since: datetime | None,
    dialect: str,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [
        Prompt.workspace_id == workspace_id,
        Prompt.deleted_at.is_(None),
    ]
    if q is not None:
        pattern = (
            "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        )
        where.append(
            func.lower(Prompt.key).like(pattern, escape="\\")
            | func.lower(Prompt.name).like(pattern, escape="\\")
        )
    if env is not None:
        where.append(Prompt.env == env)
    if category is not None:
        where.append(Prompt.category == category)
    if tag is not None:
        where.append(_has_tag(tag, dialect))
    if updated_since is not None:
        where.append(Prompt.updated_at >= updated_since)
    return where


def _has_tag(tag: str, dialect: str) -> ColumnElement[bool]:
    """The prompt's ``tags`` (a JSON array of strings) contain ``tag``."""
    if dialect == "postgresql":
        return type_coerce(Prompt.tags, JSONB).contains([tag])  # JSONB @>
    each = func.json_each(Prompt.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def list_prompts(
    db: Session,
    workspace_id: str,
    *,
    q: str | None = None,
    env: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    updated_since: datetime | None = None,
    after: Cursor | None = None,
    order: Order = "desc",
    limit: int = 50,
) -> Sequence[Prompt]:
    """The workspace's prompts matching the filters, keyset on ``(created_at, id)``: up to
    ``limit + 1`` rows."""
    where = _filters(
        workspace_id,
        q=q,
        env=env,
        category=category,
        tag=tag,
        updated_since=updated_since,
        dialect=db.get_bind().dialect.name,
    )
    stmt = apply_keyset(
        select(Prompt).where(*where),
        Prompt.created_at,
        Prompt.id,
        after=after,
        order=order,
        limit=limit,
    )
    return db.scalars(stmt).all()


def count_prompts(
    db: Session,
    workspace_id: str,
    *,
    q: str | None = None,
    env: str | None = None,
    category: str | None = None,
    tag: str | None = None,
    updated_since: datetime | None = None,
) -> int:
    where = _filters(
        workspace_id,
        q=q,
        env=env,
        category=category,
        tag=tag,
        updated_since=updated_since,
        dialect=db.get_bind().dialect.name,
    )
    return db.scalar(select(func.count()).select_from(Prompt).where(*where)) or 0


def get_version(db: Session, prompt_id: str, version: int) -> PromptVersion | None:
    stmt = select(PromptVersion).where(
        PromptVersion.prompt_id == prompt_id, PromptVersion.version == version
    )
    return db.scalars(stmt).first()


def list_versions(
    db: Session, prompt_id: str, *, after: int | None, order: Order, limit: int
) -> Sequence[PromptVersion]:
    """A prompt's versions by number (``desc``: newest first), after the number ``after``: up
    to ``limit + 1`` rows."""
    stmt = select(PromptVersion).where(PromptVersion.prompt_id == prompt_id)
    if after is not None:
        stmt = stmt.where(
            PromptVersion.version < after if order == "desc" else PromptVersion.version > after
        )
    column = PromptVersion.version.desc() if order == "desc" else PromptVersion.version.asc()
    return db.scalars(stmt.order_by(column).limit(limit + 1)).all()


def count_versions(db: Session, prompt_id: str) -> int:
    stmt = (
        select(func.count()).select_from(PromptVersion).where(PromptVersion.prompt_id == prompt_id)
    )
    return db.scalar(stmt) or 0


# ── the SDK fetch: plain rows, one query in the common case ─────────────────────────────────


class ServedVersion(NamedTuple):
    """What the SDK fetch serves of a version."""

    version: int
    label: str | None
    model: str | None
    content: str
    variables: list[str]


class SdkCandidate(NamedTuple):
    """A live prompt with ``key`` in one env of the workspace, what it needs to choose the
    version to serve, and its live version (None while it has none)."""

    prompt_id: str
    key: str
    env: str
    live_version: int | None
    rollout: dict[str, Any] | None
    workspace_settings: dict[str, Any] | None
    live: ServedVersion | None


# Built once (the fetch is the hottest path): executed with the request's values as parameters.
_SDK_ANY_ENV = (
    select(
        Prompt.id,
        Prompt.key,
        Prompt.env,
        Prompt.live_version,
        Prompt.rollout,
        Workspace.settings,
        PromptVersion.version,
        PromptVersion.label,
        PromptVersion.model,
        PromptVersion.content,
        PromptVersion.variables,
    )
    .join(Workspace, Workspace.id == Prompt.workspace_id)
    .outerjoin(
        PromptVersion,
        (PromptVersion.prompt_id == Prompt.id) & (PromptVersion.version == Prompt.live_version),
    )
    .where(
        Prompt.workspace_id == bindparam("workspace_id"),
        Prompt.key == bindparam("key"),
        Prompt.deleted_at.is_(None),
    )
)
_SDK_ONE_ENV = _SDK_ANY_ENV.where(Prompt.env == bindparam("env"))
_SDK_VERSION = select(
    PromptVersion.version,
    PromptVersion.label,
    PromptVersion.model,
    PromptVersion.content,
    PromptVersion.variables,
).where(
    PromptVersion.prompt_id == bindparam("prompt_id"),
    PromptVersion.version == bindparam("version"),
)


def sdk_candidates(db: Session, workspace_id: str, key: str, env: str | None) -> list[SdkCandidate]:
    """The workspace's live prompts with ``key`` (in ``env``, or in every env when None), each
    with its live version and the workspace's settings, in one query."""
    params = {"workspace_id": workspace_id, "key": key}
    if env is None:
        rows = db.execute(_SDK_ANY_ENV, params)
    else:
        rows = db.execute(_SDK_ONE_ENV, {**params, "env": env})
    return [
        SdkCandidate(
            prompt_id=row[0],
            key=row[1],
            env=row[2],
            live_version=row[3],
            rollout=row[4],
            workspace_settings=row[5],
            live=ServedVersion(*row[6:]) if row[6] is not None else None,
        )
        for row in rows
    ]


def served_version(db: Session, prompt_id: str, version: int) -> ServedVersion | None:
    """What the SDK fetch serves of one version of a prompt, if it exists."""
    row = db.execute(_SDK_VERSION, {"prompt_id": prompt_id, "version": version}).first()
    return ServedVersion(*row) if row is not None else None
