"""The AI gateway's traffic: the response cache and the request log, and their queries.

Conventions are those of ``server.storage.models``. Both tables belong to a workspace (deleted
with it); the log keeps plain ids of the credential, route and backend, so history outlives
what it refers to, while a cache entry's route is cleared when the route is deleted.

A cache entry is keyed by its 64-hex key alone (the key already covers the workspace, the
route and the resolved backend), listed by ``(created_at, key)`` and live until ``expires_at``;
expired entries are never served or listed and are deleted as new entries are stored.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from server.storage.common import Cursor, Order, apply_keyset
from server.storage.models import ID, Base
from server.storage.types import JSONDocument, UTCDateTime

__all__ = [
    "CACHE_STATUSES",
    "CacheEntry",
    "GatewayRequest",
    "add_requests",
    "cache_outcomes",
    "cache_totals",
    "count_cache_entries",
    "count_hit",
    "count_requests",
    "delete_cache_entry",
    "find_cache_entry",
    "list_cache_entries",
    "list_requests",
    "purge_cache_entries",
    "save_cache_entry",
]

CACHE_STATUSES = ("HIT", "MISS", "BYPASS")
APIS = ("openai", "anthropic")
MODEL = String(200)
# Expired cache rows are swept at most this often per process (seconds).
SWEEP_EVERY = 60.0
_next_sweep = 0.0


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class CacheEntry(Base):
    """One cached answer."""

    __tablename__ = "gateway_cache_entries"
    __table_args__ = (
        CheckConstraint(_one_of("api", APIS), name="api"),
        Index(
            "ix_gateway_cache_entries_workspace_id_created_at_key",
            "workspace_id",
            "created_at",
            "key",
        ),
        Index("ix_gateway_cache_entries_expires_at", "expires_at"),
        Index("ix_gateway_cache_entries_route_id", "route_id"),
    )

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    route_id: Mapped[str | None] = mapped_column(
        ID, ForeignKey("gateway_routes.id", ondelete="SET NULL")
    )
    backend_id: Mapped[str | None] = mapped_column(ID)
    model: Mapped[str] = mapped_column(MODEL)
    upstream_model: Mapped[str] = mapped_column(MODEL)
    api: Mapped[str] = mapped_column(String(16))
    response: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    hits: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_hit_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class GatewayRequest(Base):
    """One data-plane call, as the request log keeps it."""

    __tablename__ = "gateway_requests"
    __table_args__ = (
        CheckConstraint(_one_of("api", APIS), name="api"),
        CheckConstraint(_one_of("cache", CACHE_STATUSES), name="cache"),
        Index("ix_gateway_requests_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        Index("ix_gateway_requests_backend_id_created_at", "backend_id", "created_at"),
        Index("ix_gateway_requests_workspace_id_cache", "workspace_id", "cache"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    credential_id: Mapped[str | None] = mapped_column(ID)
    run_id: Mapped[str | None] = mapped_column(ID)
    api: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(MODEL)
    upstream_model: Mapped[str | None] = mapped_column(MODEL)
    route_id: Mapped[str | None] = mapped_column(ID)
    backend_id: Mapped[str | None] = mapped_column(ID)
    stream: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int] = mapped_column(Integer)
    cache: Mapped[str | None] = mapped_column(String(8))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    cached_tokens: Mapped[int] = mapped_column(Integer)
    cache_write_tokens: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float | None] = mapped_column(Double)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


# ── the cache ───────────────────────────────────────────────────────────────────────────────


def find_cache_entry(
    session: Session, workspace_id: str, key: str, now: datetime
) -> CacheEntry | None:
    """The live entry ``key`` of the workspace, if any."""
    return session.scalars(
        select(CacheEntry).where(
            CacheEntry.key == key,
            CacheEntry.workspace_id == workspace_id,
            CacheEntry.expires_at > now,
        )
    ).first()


def save_cache_entry(session: Session, entry: CacheEntry, now: datetime) -> None:
    """Store ``entry``, replacing an older one under its key. Two workers that store the same
    answer at once both succeed (the second keeps the first's row); expired entries are swept
    at most once per ``SWEEP_EVERY`` seconds per process."""
    global _next_sweep
    try:
        with session.begin_nested():
            session.execute(delete(CacheEntry).where(CacheEntry.key == entry.key))
            session.add(entry)
            session.flush()
    except IntegrityError:
        pass  # stored meanwhile by another worker: the same answer is there
    tick = time.monotonic()
    if tick >= _next_sweep:
        _next_sweep = tick + SWEEP_EVERY
        session.execute(delete(CacheEntry).where(CacheEntry.expires_at <= now))


def count_hit(session: Session, workspace_id: str, key: str, now: datetime) -> None:
    session.execute(
        update(CacheEntry)
        .where(CacheEntry.key == key, CacheEntry.workspace_id == workspace_id)
        .values(hits=CacheEntry.hits + 1, last_hit_at=now)
    )


def _cache_filters(
    workspace_id: str, route_id: str | None, model: str | None, now: datetime | None
) -> list[Any]:
    where: list[Any] = [CacheEntry.workspace_id == workspace_id]
    if now is not None:
        where.append(CacheEntry.expires_at > now)
    if route_id is not None:
        where.append(CacheEntry.route_id == route_id)
    if model is not None:
        where.append(CacheEntry.model == model)
    return where


def list_cache_entries(
    session: Session,
    workspace_id: str,
    *,
    route_id: str | None,
    model: str | None,
    now: datetime,
    after: Cursor | None,
    order: Order,
    limit: int,
) -> Sequence[CacheEntry]:
    stmt = select(CacheEntry).where(*_cache_filters(workspace_id, route_id, model, now))
    keyed: Any = CacheEntry
    return session.scalars(
        apply_keyset(stmt, keyed.created_at, keyed.key, after=after, order=order, limit=limit)
    ).all()


def count_cache_entries(
    session: Session, workspace_id: str, *, route_id: str | None, model: str | None, now: datetime
) -> int:
    stmt = select(func.count()).where(*_cache_filters(workspace_id, route_id, model, now))
    return int(session.scalar(stmt) or 0)


def delete_cache_entry(session: Session, workspace_id: str, key: str, now: datetime) -> bool:
    """Delete the live entry ``key``; whether there was one."""
    result = session.execute(
        delete(CacheEntry).where(
            CacheEntry.key == key,
            CacheEntry.workspace_id == workspace_id,
            CacheEntry.expires_at > now,
        )
    )
    return bool(getattr(result, "rowcount", 0))


def purge_cache_entries(
    session: Session, workspace_id: str, *, route_id: str | None, model: str | None
) -> int:
    """Delete the workspace's entries (of one route or model, if given); how many."""
    result = session.execute(
        delete(CacheEntry).where(*_cache_filters(workspace_id, route_id, model, None))
    )
    return int(getattr(result, "rowcount", 0) or 0)


def cache_totals(session: Session, workspace_id: str, now: datetime) -> tuple[int, int]:
    """The live entries' count and size in bytes."""
    count, size = session.execute(
        select(func.count(), func.coalesce(func.sum(CacheEntry.size_bytes), 0)).where(
            *_cache_filters(workspace_id, None, None, now)
        )
    ).one()
    return int(count), int(size)


# ── the request log ─────────────────────────────────────────────────────────────────────────


def add_requests(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Log entries (``GatewayRequest`` column values), in one bulk insert."""
    if rows:
        session.execute(insert(GatewayRequest), list(rows))


def _request_filters(workspace_id: str, filters: dict[str, Any]) -> list[Any]:
    where: list[Any] = [GatewayRequest.workspace_id == workspace_id]
    for name in ("model", "route_id", "backend_id", "cache"):
        if filters.get(name) is not None:
            where.append(getattr(GatewayRequest, name) == filters[name])
    if filters.get("status") is not None:
        where.append(GatewayRequest.status_code == filters["status"])
    if filters.get("since") is not None:
        where.append(GatewayRequest.created_at >= filters["since"])
    if filters.get("until") is not None:
        where.append(GatewayRequest.created_at < filters["until"])
    return where


def list_requests(
    session: Session,
    workspace_id: str,
    filters: dict[str, Any],
    *,
    after: Cursor | None,
    order: Order,
    limit: int,
) -> Sequence[GatewayRequest]:
    """The log's entries matching ``filters`` (``model``, ``route_id``, ``backend_id``,
    ``cache``, ``status``, ``since``, ``until``), keyset-paginated."""
    stmt = select(GatewayRequest).where(*_request_filters(workspace_id, filters))
    keyed: Any = GatewayRequest
    return session.scalars(
        apply_keyset(stmt, keyed.created_at, keyed.id, after=after, order=order, limit=limit)
    ).all()


def count_requests(session: Session, workspace_id: str, filters: dict[str, Any]) -> int:
    stmt = select(func.count()).where(*_request_filters(workspace_id, filters))
    return int(session.scalar(stmt) or 0)


def cache_outcomes(session: Session, workspace_id: str) -> tuple[int, int]:
    """How many of the workspace's calls were cache hits and misses."""
    rows = session.execute(
        select(GatewayRequest.cache, func.count())
        .where(
            GatewayRequest.workspace_id == workspace_id, GatewayRequest.cache.in_(("HIT", "MISS"))
        )
        .group_by(GatewayRequest.cache)
    ).all()
    counts = {status: int(n) for status, n in rows}
    return counts.get("HIT", 0), counts.get("MISS", 0)
