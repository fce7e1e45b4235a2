"""The gateway engine of one app, wired from its configuration: upstream clients over one HTTP
pool, the shared rate-limit store, the cache (the database, or Redis when configured) and the
request log, with its background writer for the calls an HTTP server answers."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from server.config import Config
from server.domain.gateway_cache import DatabaseCache
from server.domain.gateway_traffic import LogRecorder
from server.gateway.cache import CacheStore
from server.gateway.engine import Engine
from server.gateway.local import LocalUpstream
from server.gateway.ratelimit import GatewayLimiter, HitStore, Quota
from server.gateway.record_queue import RecordQueue
from server.gateway.upstream import new_http_client, upstreams


def cache_store(config: Config, read_sessions: Callable[[], Session]) -> CacheStore:
    """Redis when ``GANTRY_REDIS_URL`` is set, else the database."""
    if config.redis_url:
        from server.gateway.cache_redis import RedisCache

        return RedisCache.from_url(config.redis_url)
    return DatabaseCache(read_sessions)


def build_engine(
    config: Config,
    *,
    read_sessions: Callable[[], Session],
    write_sessions: Callable[[], Session],
    hits: HitStore,
) -> Engine:
    cache = cache_store(config, read_sessions)
    recorder = LogRecorder(write_sessions, cache)
    queue = RecordQueue(recorder)
    return Engine(
        upstreams=upstreams(new_http_client(), LocalUpstream()),
        limiter=GatewayLimiter(
            hits, Quota(config.gateway_requests_per_minute, config.gateway_burst)
        ),
        cache=cache,
        recorder=recorder,
        queue=queue,
        database_idle=queue.database_idle,
        keep_alive_s=config.gateway_keep_alive_s,
    )
