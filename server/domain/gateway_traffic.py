"""The gateway's request log: writing each call once its client has the answer, and reading it.

``LogRecorder`` is the engine's ``Recorder``: a short unit of work of its own, after the
response (after a stream's last byte), holding the log entry and the cache entry the call
stored or hit. ``record_all`` writes several calls in one unit of work, for the engine's
background writer (``server.gateway.record_queue``). A failure to write is the recorder's to
report; the call has been answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.domain.listing import Window
from server.domain.unit import UnitOfWork, unit_of_work
from server.domain.values import optional_datetime, optional_text
from server.gateway.cache import CachedAnswer, CacheStore
from server.gateway.record import CallRecord, Finished
from server.storage import gateway_traffic as traffic
from server.storage.gateway_traffic import GatewayRequest

log = logging.getLogger("gantry.gateway")


def log_row(call: CallRecord) -> dict[str, Any]:
    """The log entry of ``call``, by ``GatewayRequest`` column."""
    usage = call.usage
    return dict(
        id=call.id,
        workspace_id=call.workspace_id,
        credential_id=call.credential_id,
        run_id=call.run_id,
        api=call.api,
        model=call.model[:200],
        upstream_model=call.upstream_model,
        route_id=call.route_id,
        backend_id=call.backend_id,
        stream=call.stream,
        status_code=call.status_code,
        cache=call.cache,
        prompt_tokens=usage.input_tokens,
        completion_tokens=usage.output_tokens,
        cached_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens,
        cost_usd=call.cost_usd,
        latency_ms=call.latency_ms,
        error=call.error,
        request_id=call.request_id,
        created_at=call.created_at,
    )


class LogRecorder:
    """``server.gateway.record.Recorder`` over the database (and the app's cache store)."""

    def __init__(self, sessions: Callable[[], Session], cache: CacheStore) -> None:
        self.sessions = sessions
        self.cache = cache

    def record(
        self, call: CallRecord, *, cache_save: CachedAnswer | None, cache_hit: str | None
    ) -> None:
        try:
            self._write([Finished(call, cache_save, cache_hit)])
        except SQLAlchemyError as exc:
            # The workspace may be gone, or the database busy: the call has been answered.
            log.warning("gateway call %s not recorded: %s", call.id, exc.__class__.__name__)

    def record_all(self, finished: Sequence[Finished]) -> None:
        """Every call in one unit of work; if that fails, each in a unit of its own, so one
        call that cannot be written (its workspace deleted meanwhile) loses no other. A cache
        outside the database (Redis) may then see a stored entry or a hit twice."""
        if len(finished) > 1:
            try:
                self._write(finished)
                return
            except SQLAlchemyError:
                pass
        for one in finished:
            self.record(one.call, cache_save=one.cache_save, cache_hit=one.cache_hit)

    def _write(self, finished: Iterable[Finished]) -> None:
        finished = list(finished)
        rows = [log_row(one.call) for one in finished]  # made before the write lock is taken
        with unit_of_work(self.sessions) as uow:
            traffic.add_requests(uow.db, rows)
            for one in finished:
                if one.cache_save is not None:
                    self.cache.save(uow, one.cache_save)
                if one.cache_hit is not None:
                    self.cache.count_hit(uow, one.call.workspace_id, one.cache_hit)


def list_requests(
    uow: UnitOfWork, workspace_id: str, query: dict[str, Any], *, window: Window
) -> tuple[Sequence[GatewayRequest], int | None]:
    """The log's entries that match the list's filters, in ``window``."""
    filters = {
        "model": optional_text(query.get("model")),
        "route_id": optional_text(query.get("route_id")),
        "backend_id": optional_text(query.get("backend_id")),
        "cache": optional_text(query.get("cache")),
        "status": query.get("status"),
        "since": optional_datetime(query.get("from"), "query.from"),
        "until": optional_datetime(query.get("to"), "query.to"),
    }
    found = traffic.list_requests(
        uow.db,
        workspace_id,
        filters,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    if not window.include_total:
        return found, None
    return found, traffic.count_requests(uow.db, workspace_id, filters)
