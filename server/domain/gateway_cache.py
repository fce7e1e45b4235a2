"""The gateway's response cache: the database store, and what the cache operations do.

``DatabaseCache`` is the default ``server.gateway.cache.CacheStore``: a lookup reads in a short
session of its own (a call never holds the request's transaction while it waits on an
upstream); entries are stored and hits counted in the unit of work that writes the call's log
entry, after the response. The operations (stats, list, get, delete, purge) read and change
whichever store the app uses.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from server.domain.errors import Invalid, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.gateway.cache import CachedAnswer, CacheStore
from server.storage import gateway as gateway_rows
from server.storage import gateway_traffic as traffic
from server.storage.gateway_traffic import CacheEntry


def _answer(row: CacheEntry) -> CachedAnswer:
    return CachedAnswer(
        key=row.key,
        workspace_id=row.workspace_id,
        route_id=row.route_id,
        backend_id=row.backend_id,
        model=row.model,
        upstream_model=row.upstream_model,
        api=row.api,
        response=row.response,
        prompt_tokens=row.prompt_tokens,
        completion_tokens=row.completion_tokens,
        cached_tokens=row.cached_tokens,
        size_bytes=row.size_bytes,
        hits=row.hits,
        created_at=row.created_at,
        expires_at=row.expires_at,
    )


class DatabaseCache:
    """``CacheStore`` over the ``gateway_cache_entries`` table."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def lookup(self, workspace_id: str, key: str, now: datetime) -> CachedAnswer | None:
        session = self.sessions()
        try:
            row = traffic.find_cache_entry(session, workspace_id, key, now)
            return _answer(row) if row is not None else None
        finally:
            session.rollback()
            session.close()

    def save(self, uow: UnitOfWork, entry: CachedAnswer) -> None:
        row = CacheEntry(
            key=entry.key,
            workspace_id=entry.workspace_id,
            route_id=entry.route_id,
            backend_id=entry.backend_id,
            model=entry.model,
            upstream_model=entry.upstream_model,
            api=entry.api,
            response=dict(entry.response),
            prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens,
            cached_tokens=entry.cached_tokens,
            size_bytes=entry.size_bytes,
            hits=entry.hits,
            created_at=entry.created_at,
            expires_at=entry.expires_at,
            last_hit_at=None,
        )
        traffic.save_cache_entry(uow.db, row, uow.now)

    def count_hit(self, uow: UnitOfWork, workspace_id: str, key: str) -> None:
        traffic.count_hit(uow.db, workspace_id, key, uow.now)

    def entries(
        self,
        uow: UnitOfWork,
        workspace_id: str,
        *,
        route_id: str | None,
        model: str | None,
        window: Window,
    ) -> tuple[Sequence[CachedAnswer], int | None]:
        rows = traffic.list_cache_entries(
            uow.db,
            workspace_id,
            route_id=route_id,
            model=model,
            now=uow.now,
            after=window.after,
            order=window.direction,
            limit=window.limit,
        )
        total = (
            traffic.count_cache_entries(
                uow.db, workspace_id, route_id=route_id, model=model, now=uow.now
            )
            if window.include_total
            else None
        )
        return [_answer(r) for r in rows], total

    def entry(self, uow: UnitOfWork, workspace_id: str, key: str) -> CachedAnswer | None:
        row = traffic.find_cache_entry(uow.db, workspace_id, key, uow.now)
        return _answer(row) if row is not None else None

    def delete(self, uow: UnitOfWork, workspace_id: str, key: str) -> bool:
        return traffic.delete_cache_entry(uow.db, workspace_id, key, uow.now)

    def purge(
        self, uow: UnitOfWork, workspace_id: str, *, route_id: str | None, model: str | None
    ) -> int:
        return traffic.purge_cache_entries(uow.db, workspace_id, route_id=route_id, model=model)

    def totals(self, uow: UnitOfWork, workspace_id: str) -> tuple[int, int]:
        return traffic.cache_totals(uow.db, workspace_id, uow.now)


# ── the cache operations ────────────────────────────────────────────────────────────────────


def cache_stats(uow: UnitOfWork, store: CacheStore, workspace_id: str) -> dict[str, object]:
    """The workspace's cache: whether an enabled route caches, its live entries, its hits and
    misses."""
    routes = gateway_rows.list_routes(uow.db, workspace_id, after=None, limit=None)
    enabled = any(route.enabled and route.cache_enabled for route in routes)
    entries, size = store.totals(uow, workspace_id)
    hits, misses = traffic.cache_outcomes(uow.db, workspace_id)
    looked_up = hits + misses
    return {
        "enabled": enabled,
        "hit_rate": hits / looked_up if looked_up else 0.0,
        "hits": hits,
        "misses": misses,
        "entries": entries,
        "size_bytes": size,
    }


def get_entry(uow: UnitOfWork, store: CacheStore, workspace_id: str, key: str) -> CachedAnswer:
    entry = store.entry(uow, workspace_id, key)
    if entry is None:
        raise NotFound("Cache entry not found.")
    return entry


def delete_entry(uow: UnitOfWork, store: CacheStore, workspace_id: str, key: str) -> None:
    """Delete one live entry (audited as ``gateway.cache.purged``); unknown is not found."""
    if not store.delete(uow, workspace_id, key):
        raise NotFound("Cache entry not found.")
    uow.audit(
        "gateway.cache.purged",
        workspace_id=workspace_id,
        target_type="workspace",
        target_id=workspace_id,
        summary=f"{uow.actor.label} deleted a gateway cache entry",
        metadata={"key": key, "removed": 1},
    )


def purge(
    uow: UnitOfWork,
    store: CacheStore,
    workspace_id: str,
    *,
    route_id: str | None,
    model: str | None,
    confirm: bool,
) -> int:
    """Remove the entries of a route or a model (``gateway.cache.purged``), or with
    ``confirm`` every entry (``gateway.cache.cleared``); clearing unconfirmed is refused."""
    if route_id is None and model is None:
        if not confirm:
            raise Invalid(
                "Clearing the whole cache needs confirm=true.",
                code="confirmation_required",
                errors=[("query.confirm", "must be true to clear every entry")],
            )
        removed = store.purge(uow, workspace_id, route_id=None, model=None)
        uow.audit(
            "gateway.cache.cleared",
            workspace_id=workspace_id,
            target_type="workspace",
            target_id=workspace_id,
            summary=f"{uow.actor.label} cleared the gateway cache ({removed} entries)",
            metadata={"removed": removed},
        )
        return removed
    removed = store.purge(uow, workspace_id, route_id=route_id, model=model)
    uow.audit(
        "gateway.cache.purged",
        workspace_id=workspace_id,
        target_type="workspace",
        target_id=workspace_id,
        summary=f"{uow.actor.label} purged {removed} gateway cache entries",
        metadata={"route_id": route_id, "model": model, "removed": removed},
    )
    return removed
