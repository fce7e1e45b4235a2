"""The gateway's rules and stores on the database: who may call, the database cache, the
request log (``unit_of_work`` on a migrated SQLite database, no HTTP)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from server.domain import gateway_cache, gateway_traffic
from server.domain.actors import Principal
from server.domain.errors import Forbidden, Invalid, NotFound
from server.domain.gateway_access import gateway_caller
from server.domain.gateway_cache import DatabaseCache
from server.domain.gateway_traffic import LogRecorder
from server.domain.unit import unit_of_work
from server.gateway.cache import CachedAnswer
from server.gateway.chat import Usage
from server.gateway.record import CallRecord
from server.storage import repositories as repo
from server.storage.db import Database
from server.storage.types import utcnow

# The recorder writes in units of its own, at the wall clock's now.
NOW = utcnow()
DAY = 86_400


@dataclass(frozen=True)
class Page:
    after: tuple[object, str] | None = None
    direction: str = "desc"
    limit: int = 50
    include_total: bool = True


@dataclass
class World:
    database: Database
    workspace_id: str
    owner_id: str
    viewer_id: str


@pytest.fixture
def world(database_url: str, tmp_path: Path) -> Iterator[World]:
    """SQLite, and PostgreSQL too when ``GANTRY_TEST_DATABASE_URL`` is set."""
    database = Database.from_url(database_url, tmp_path)
    database.migrate()
    with database.session(write=True) as s:
        owner = repo.create_user(s, email="o@example.com", name="O")
        viewer = repo.create_user(s, email="v@example.com", name="V")
        ws = repo.create_workspace(s, name="W", slug="w", owner_id=owner.id)
        repo.add_member(s, ws.id, viewer.id, "viewer")
        ids = World(database, ws.id, owner.id, viewer.id)
    yield ids
    database.dispose()


def key(role: str, workspace_id: str) -> Principal:
    return Principal(
        kind="api_key",
        credential_id="key_1",
        label="k",
        scopes=frozenset({"gateway"}),
        workspace_id=workspace_id,
        key_role=role,
    )


def pat(user_id: str) -> Principal:
    return Principal(
        kind="pat", credential_id="tok_1", label="p", user_id=user_id, scopes=frozenset({"gateway"})
    )


def test_who_may_call_the_gateway_and_where(world: World) -> None:
    ws = world.workspace_id
    with unit_of_work(world.database.sessionmaker) as uow:
        assert gateway_caller(uow, key("operator", ws), None).workspace_id == ws
        assert gateway_caller(uow, key("admin", ws), ws).credential_id == "key_1"
        with pytest.raises(Forbidden):
            gateway_caller(uow, key("viewer", ws), None)
        with pytest.raises(NotFound):
            gateway_caller(uow, key("operator", ws), "ws_other")
        assert gateway_caller(uow, pat(world.owner_id), ws).workspace_id == ws
        with pytest.raises(Invalid):
            gateway_caller(uow, pat(world.owner_id), None)
        with pytest.raises(Forbidden):
            gateway_caller(uow, pat(world.viewer_id), ws)
        with pytest.raises(NotFound):
            gateway_caller(uow, pat(world.owner_id), "ws_nobodys000000000000000")
        session = Principal(
            kind="session", credential_id="ses_1", label="s", user_id=world.owner_id
        )
        with pytest.raises(Forbidden):
            gateway_caller(uow, session, ws)


def _entry(ws: str, key: str, *, model: str = "m", ttl_s: int = 60) -> CachedAnswer:
    return CachedAnswer(
        key=key,
        workspace_id=ws,
        route_id=None,
        backend_id="bke_1",
        model=model,
        upstream_model="up",
        api="openai",
        response={"object": "chat.completion"},
        prompt_tokens=3,
        completion_tokens=2,
        cached_tokens=1,
        size_bytes=30,
        hits=0,
        created_at=NOW,
        expires_at=NOW + timedelta(seconds=ttl_s),
    )


def test_the_database_cache_serves_live_entries_and_purges_on_confirmation(world: World) -> None:
    ws = world.workspace_id
    cache = DatabaseCache(world.database.sessionmaker)
    recorder = LogRecorder(world.database.write_sessionmaker, cache)
    call = CallRecord(
        id="gwr_000000000000000000000001",
        workspace_id=ws,
        credential_id="key_1",
        run_id=None,
        api="openai",
        model="m",
        stream=False,
        created_at=NOW,
        cache="MISS",
        usage=Usage(3, 2, 1),
    )
    # The recorder sweeps expired entries by the real clock, which runs on past NOW in a long
    # session: these entries live a day.
    recorder.record(call, cache_save=_entry(ws, "a" * 64, ttl_s=DAY), cache_hit=None)
    recorder.record(
        call.__class__(**{**call.__dict__, "id": "gwr_000000000000000000000002", "cache": "HIT"}),
        cache_save=None,
        cache_hit="a" * 64,
    )
    with unit_of_work(world.database.write_sessionmaker, now=NOW) as uow:
        cache.save(uow, _entry(ws, "b" * 64, model="other", ttl_s=DAY))
        cache.save(uow, _entry(ws, "c" * 64, ttl_s=-1))  # already expired
    assert cache.lookup(ws, "a" * 64, NOW) is not None
    assert cache.lookup(ws, "c" * 64, NOW) is None
    assert cache.lookup("ws_elsewhere", "a" * 64, NOW) is None
    with unit_of_work(world.database.write_sessionmaker, now=NOW) as uow:
        stats = gateway_cache.cache_stats(uow, cache, ws)
        assert (stats["entries"], stats["size_bytes"], stats["hits"], stats["misses"]) == (
            2,
            60,
            1,
            1,
        )
        found, total = cache.entries(uow, ws, route_id=None, model="other", window=Page())  # type: ignore[arg-type]
        assert [e.key for e in found] == ["b" * 64] and total == 1
        assert gateway_cache.get_entry(uow, cache, ws, "a" * 64).hits == 1
        with pytest.raises(Invalid) as refused:
            gateway_cache.purge(uow, cache, ws, route_id=None, model=None, confirm=False)
        assert refused.value.code == "confirmation_required"
        assert gateway_cache.purge(uow, cache, ws, route_id=None, model="other", confirm=False) == 1
        gateway_cache.delete_entry(uow, cache, ws, "a" * 64)
        with pytest.raises(NotFound):
            gateway_cache.delete_entry(uow, cache, ws, "a" * 64)
    with unit_of_work(world.database.sessionmaker, now=NOW) as uow:
        logged, _ = gateway_traffic.list_requests(uow, ws, {"cache": "HIT"}, window=Page())  # type: ignore[arg-type]
        assert [r.id for r in logged] == ["gwr_000000000000000000000002"]
        assert (logged[0].prompt_tokens, logged[0].cached_tokens) == (3, 1)


@pytest.fixture
def redis_cache() -> Iterator[object]:
    import os
    import secrets

    url = os.environ.get("GANTRY_TEST_REDIS_URL", "").strip()
    if not url:
        pytest.skip("GANTRY_TEST_REDIS_URL is not set")
    from server.gateway.cache_redis import RedisCache

    cache = RedisCache.from_url(url, prefix=f"gantry-test:{secrets.token_hex(6)}:")
    yield cache
    for name in cache.client.scan_iter(match=cache.prefix + "*"):
        cache.client.delete(name)
    cache.client.close()


def test_the_redis_cache_keeps_entries_per_workspace_until_they_expire(
    world: World, redis_cache: object
) -> None:
    from server.gateway.cache_redis import RedisCache

    cache = redis_cache
    assert isinstance(cache, RedisCache)
    ws = world.workspace_id
    with unit_of_work(world.database.sessionmaker, now=NOW) as uow:
        cache.save(uow, _entry(ws, "a" * 64))
        cache.save(uow, _entry(ws, "b" * 64, model="other"))
        cache.count_hit(uow, ws, "a" * 64)
        assert cache.lookup(ws, "a" * 64, NOW).hits == 1  # type: ignore[union-attr]
        assert cache.lookup("ws_elsewhere", "a" * 64, NOW) is None
        assert cache.lookup(ws, "a" * 64, NOW + timedelta(seconds=61)) is None
        found, total = cache.entries(uow, ws, route_id=None, model=None, window=Page(limit=1))  # type: ignore[arg-type]
        assert len(found) == 2 and total == 2  # one page plus the row that says more follow
        assert cache.totals(uow, ws) == (2, 60)
        assert cache.purge(uow, ws, route_id=None, model="other") == 1
        assert cache.delete(uow, ws, "a" * 64) and not cache.delete(uow, ws, "a" * 64)
        assert cache.totals(uow, ws) == (0, 0)
