"""Fixtures for the gateway engine's tests: fake upstreams, and an engine with in-memory
stores (a cache, a rate-limit store and a recorder that keep everything for inspection)."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.gateway.cache import CachedAnswer
from server.gateway.config import BackendConfig, ProviderConfig, RouteConfig
from server.gateway.engine import Engine
from server.gateway.local import LocalUpstream
from server.gateway.ratelimit import GatewayLimiter, Quota
from server.gateway.record import CallRecord
from server.gateway.upstream import new_http_client, upstreams
from tests.gateway.fakes import FakeUpstream

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def openai_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("openai") as fake:
        yield fake


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("anthropic") as fake:
        yield fake


@pytest.fixture(autouse=True)
def _fresh_fakes(openai_upstream: FakeUpstream, anthropic_upstream: FakeUpstream) -> None:
    openai_upstream.reset()
    anthropic_upstream.reset()


class MemoryHits:
    """``HitStore`` in memory: the same sliding window as the shared stores."""

    def __init__(self) -> None:
        self.hits: dict[str, list[float]] = {}

    def admit(
        self, key: str, limit: int, window: float, now: float
    ) -> tuple[float | None, int, float | None]:
        live = [t for t in self.hits.get(key, []) if t > now - window]
        if len(live) >= limit:
            self.hits[key] = live
            return live[0] + window - now, len(live), live[-1] + window
        live.append(now)
        self.hits[key] = live
        return None, len(live), now + window


class MemoryCache:
    """``CacheStore`` in memory (the engine only looks up; the recorder saves)."""

    def __init__(self) -> None:
        self.entries_by_key: dict[str, CachedAnswer] = {}
        self.hit_counts: dict[str, int] = {}

    def lookup(self, workspace_id: str, key: str, now: datetime) -> CachedAnswer | None:
        entry = self.entries_by_key.get(key)
        if entry is None or entry.workspace_id != workspace_id or entry.expires_at <= now:
            return None
        return entry

    def save(self, uow: UnitOfWork | None, entry: CachedAnswer) -> None:
        self.entries_by_key[entry.key] = entry

    def count_hit(self, uow: UnitOfWork | None, workspace_id: str, key: str) -> None:
        self.hit_counts[key] = self.hit_counts.get(key, 0) + 1

    def entries(
        self,
        uow: UnitOfWork,
        workspace_id: str,
        *,
        route_id: str | None,
        model: str | None,
        window: Window,
    ) -> tuple[Sequence[CachedAnswer], int | None]:
        raise NotImplementedError

    def entry(self, uow: UnitOfWork, workspace_id: str, key: str) -> CachedAnswer | None:
        raise NotImplementedError

    def delete(self, uow: UnitOfWork, workspace_id: str, key: str) -> bool:
        raise NotImplementedError

    def purge(
        self, uow: UnitOfWork, workspace_id: str, *, route_id: str | None, model: str | None
    ) -> int:
        raise NotImplementedError

    def totals(self, uow: UnitOfWork, workspace_id: str) -> tuple[int, int]:
        raise NotImplementedError


@dataclass
class MemoryRecorder:
    calls: list[CallRecord] = field(default_factory=list)
    cache: MemoryCache | None = None

    def record(
        self, call: CallRecord, *, cache_save: CachedAnswer | None, cache_hit: str | None
    ) -> None:
        self.calls.append(call)
        if self.cache is not None and cache_save is not None:
            self.cache.save(None, cache_save)
        if self.cache is not None and cache_hit is not None:
            self.cache.count_hit(None, call.workspace_id, cache_hit)


@dataclass
class Rig:
    engine: Engine
    cache: MemoryCache
    recorder: MemoryRecorder
    hits: MemoryHits


@pytest.fixture
def rig() -> Iterator[Rig]:
    cache = MemoryCache()
    recorder = MemoryRecorder(cache=cache)
    hits = MemoryHits()
    client = new_http_client()
    engine = Engine(
        upstreams=upstreams(client, LocalUpstream()),
        limiter=GatewayLimiter(hits, Quota(120, 20), clock=lambda: 1000.0),
        cache=cache,
        recorder=recorder,
        clock=lambda: NOW,
        rng=random.Random(7),
        keep_alive_s=0.2,
    )
    yield Rig(engine, cache, recorder, hits)
    client.close()


def provider(kind: str, base_url: str | None = None, *, id: str = "prv_1") -> ProviderConfig:
    return ProviderConfig(id=id, type=kind, base_url=base_url, api_key="sk-upstream")  # type: ignore[arg-type]


def backend(
    prov: ProviderConfig,
    model: str = "up-model",
    *,
    id: str = "bke_1",
    priority: int = 0,
    weight: int = 1,
    timeout_ms: int = 5000,
    enabled: bool = True,
) -> BackendConfig:
    return BackendConfig(
        id=id,
        provider=prov,
        upstream_model=model,
        weight=weight,
        timeout_ms=timeout_ms,
        enabled=enabled,
        priority=priority,
    )


def route(
    *backends: BackendConfig,
    patterns: tuple[str, ...] = ("*",),
    id: str = "rte_1",
    priority: int = 0,
    strategy: str = "failover",
    cache: bool = False,
    enabled: bool = True,
    rpm: int | None = None,
    burst: int | None = None,
) -> RouteConfig:
    return RouteConfig(
        id=id,
        name=id,
        model_patterns=patterns,
        priority=priority,
        enabled=enabled,
        strategy=strategy,  # type: ignore[arg-type]
        backends=tuple(backends),
        cache_enabled=cache,
        cache_ttl_seconds=60,
        requests_per_minute=rpm,
        burst=burst,
    )


def drain(answer: Any) -> bytes:
    """Every byte of an answer's stream, then its close (as the WSGI server does)."""
    try:
        return b"".join(answer.frames)
    finally:
        answer.on_close()


Drain = Callable[[Any], bytes]
