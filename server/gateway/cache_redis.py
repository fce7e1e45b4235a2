"""The Redis response cache (``GANTRY_REDIS_URL``): entries shared by every worker and instance.

Each entry is one JSON string that expires with the entry (``PX``), its hits a counter beside
it with the same expiry, and each workspace has a sorted set of its keys by creation time for
listing. A listing reads the workspace's whole index and drops keys whose entries have expired,
so it suits caches of thousands of entries per workspace, not millions.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import redis

from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.gateway.cache import CachedAnswer

KEY_PREFIX = "gantry:cache:"


def _encode(entry: CachedAnswer) -> bytes:
    fields = dict(entry.__dict__)
    fields["created_at"] = entry.created_at.isoformat()
    fields["expires_at"] = entry.expires_at.isoformat()
    fields["response"] = dict(entry.response)
    return orjson.dumps(fields)


def _decode(raw: bytes, hits: int) -> CachedAnswer:
    fields: dict[str, Any] = orjson.loads(raw)
    fields["created_at"] = datetime.fromisoformat(fields["created_at"])
    fields["expires_at"] = datetime.fromisoformat(fields["expires_at"])
    fields["hits"] = hits
    return CachedAnswer(**fields)


def _micros(stamp: datetime) -> int:
    return int(stamp.timestamp() * 1_000_000)


class RedisCache:
    """``server.gateway.cache.CacheStore`` over Redis."""

    def __init__(self, client: Any, *, prefix: str = KEY_PREFIX) -> None:
        self.client = client
        self.prefix = prefix

    @classmethod
    def from_url(cls, url: str, *, prefix: str = KEY_PREFIX) -> RedisCache:
        client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, prefix=prefix)

    def _entry_key(self, key: str) -> str:
        return f"{self.prefix}entry:{key}"

    def _hits_key(self, key: str) -> str:
        return f"{self.prefix}hits:{key}"

    def _index_key(self, workspace_id: str) -> str:
        return f"{self.prefix}index:{workspace_id}"

    def _read(self, workspace_id: str, keys: Sequence[str], now: datetime) -> list[CachedAnswer]:
        if not keys:
            return []
        names = [self._entry_key(k) for k in keys] + [self._hits_key(k) for k in keys]
        values = self.client.mget(names)
        raws, hits = values[: len(keys)], values[len(keys) :]
        found = []
        for raw, count in zip(raws, hits, strict=True):
            if raw is None:
                continue
            entry = _decode(raw, int(count or 0))
            if entry.workspace_id == workspace_id and entry.expires_at > now:
                found.append(entry)
        return found

    def lookup(self, workspace_id: str, key: str, now: datetime) -> CachedAnswer | None:
        found = self._read(workspace_id, [key], now)
        return found[0] if found else None

    def save(self, uow: UnitOfWork, entry: CachedAnswer) -> None:
        ttl_ms = max(1, int((entry.expires_at - uow.now).total_seconds() * 1000))
        pipe = self.client.pipeline()
        pipe.set(self._entry_key(entry.key), _encode(entry), px=ttl_ms)
        pipe.set(self._hits_key(entry.key), 0, px=ttl_ms)
        pipe.zadd(self._index_key(entry.workspace_id), {entry.key: _micros(entry.created_at)})
        pipe.execute()

    def count_hit(self, uow: UnitOfWork, workspace_id: str, key: str) -> None:
        # INCR keeps the counter's expiry, which is the entry's.
        if self.client.exists(self._hits_key(key)):
            self.client.incr(self._hits_key(key))

    def _live(self, workspace_id: str, now: datetime) -> list[CachedAnswer]:
        """Every live entry of the workspace; keys whose entries expired leave the index."""
        index = self._index_key(workspace_id)
        keys = [k.decode() if isinstance(k, bytes) else k for k in self.client.zrange(index, 0, -1)]
        live = self._read(workspace_id, keys, now)
        gone = set(keys) - {e.key for e in live}
        if gone:
            self.client.zrem(index, *gone)
        return live

    def entries(
        self,
        uow: UnitOfWork,
        workspace_id: str,
        *,
        route_id: str | None,
        model: str | None,
        window: Window,
    ) -> tuple[Sequence[CachedAnswer], int | None]:
        live = [
            e
            for e in self._live(workspace_id, uow.now)
            if (route_id is None or e.route_id == route_id) and (model is None or e.model == model)
        ]
        descending = window.direction == "desc"
        live.sort(key=lambda e: (e.created_at, e.key), reverse=descending)
        after = window.after
        if after is not None:
            live_after = [
                e
                for e in live
                if ((e.created_at, e.key) < after if descending else (e.created_at, e.key) > after)
            ]
        else:
            live_after = live
        total = len(live) if window.include_total else None
        return live_after[: window.limit + 1], total

    def entry(self, uow: UnitOfWork, workspace_id: str, key: str) -> CachedAnswer | None:
        return self.lookup(workspace_id, key, uow.now)

    def delete(self, uow: UnitOfWork, workspace_id: str, key: str) -> bool:
        if self.lookup(workspace_id, key, uow.now) is None:
            return False
        self._remove(workspace_id, [key])
        return True

    def _remove(self, workspace_id: str, keys: Sequence[str]) -> None:
        if not keys:
            return
        pipe = self.client.pipeline()
        pipe.delete(*[self._entry_key(k) for k in keys], *[self._hits_key(k) for k in keys])
        pipe.zrem(self._index_key(workspace_id), *keys)
        pipe.execute()

    def purge(
        self, uow: UnitOfWork, workspace_id: str, *, route_id: str | None, model: str | None
    ) -> int:
        doomed = [
            e.key
            for e in self._live(workspace_id, uow.now)
            if (route_id is None or e.route_id == route_id) and (model is None or e.model == model)
        ]
        self._remove(workspace_id, doomed)
        return len(doomed)

    def totals(self, uow: UnitOfWork, workspace_id: str) -> tuple[int, int]:
        live = self._live(workspace_id, uow.now)
        return len(live), sum(e.size_bytes for e in live)
