"""The response cache: keys correct by construction, and the store the engine reads.

A key is the SHA-256 of the canonical request (the whole body the client sent, every
parameter, keys sorted), the API it was sent to, the workspace, the route, and the backend and
upstream model that answer it: two requests that differ in anything a model could answer
differently never share an entry. Only non-streamed answers are cached.

Stores: the database by default (``server.domain.gateway_cache.DatabaseCache``), Redis when
``GANTRY_REDIS_URL`` is set (``server.gateway.cache_redis``). The engine only looks entries
up; storing an answer and counting a hit happen after the response, with the request log.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from server.domain.listing import Window
from server.domain.unit import UnitOfWork


def cache_key(
    body: Mapping[str, Any],
    *,
    api: str,
    workspace_id: str,
    route_id: str,
    backend_id: str,
    upstream_model: str,
) -> str:
    """The cache key of a request (64 hex digits)."""
    canonical = orjson.dumps(
        {
            "api": api,
            "backend": backend_id,
            "body": body,
            "route": route_id,
            "upstream_model": upstream_model,
            "workspace": workspace_id,
        },
        option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS,
    )
    return hashlib.sha256(canonical).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A cached response and what it is listed by."""

    key: str
    workspace_id: str
    route_id: str | None
    backend_id: str | None
    model: str  # as the client asked
    upstream_model: str
    api: str
    response: Mapping[str, Any]  # the body as the client got it
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    size_bytes: int
    hits: int
    created_at: datetime
    expires_at: datetime


class CacheStore(Protocol):
    """Where cached answers live."""

    def lookup(self, workspace_id: str, key: str, now: datetime) -> CachedAnswer | None:
        """A live entry (not expired), read on its own (no request transaction)."""
        ...

    def save(self, uow: UnitOfWork, entry: CachedAnswer) -> None:
        """Store (or replace) an entry; ``uow`` is the after-response unit of work."""
        ...

    def count_hit(self, uow: UnitOfWork, workspace_id: str, key: str) -> None: ...

    def entries(
        self,
        uow: UnitOfWork,
        workspace_id: str,
        *,
        route_id: str | None,
        model: str | None,
        window: Window,
    ) -> tuple[Sequence[CachedAnswer], int | None]:
        """Live entries in ``window`` (up to ``limit + 1``) and their count if asked."""
        ...

    def entry(self, uow: UnitOfWork, workspace_id: str, key: str) -> CachedAnswer | None: ...

    def delete(self, uow: UnitOfWork, workspace_id: str, key: str) -> bool: ...

    def purge(
        self, uow: UnitOfWork, workspace_id: str, *, route_id: str | None, model: str | None
    ) -> int: ...

    def totals(self, uow: UnitOfWork, workspace_id: str) -> tuple[int, int]:
        """The live entries' count and total size in bytes."""
        ...
