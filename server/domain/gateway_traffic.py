"""The gateway's request log: writing each call once its client has the answer, and reading it.

``LogRecorder`` is the engine's ``Recorder``: one short unit of work of its own per call, after
the response (after a stream's last byte), holding the log entry and the cache entry the call
stored or hit. A failure to write is the recorder's to report; the call has been answered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from server.domain.listing import Window
from server.domain.unit import UnitOfWork, unit_of_work
from server.domain.values import optional_datetime, optional_text
from server.gateway.cache import CachedAnswer, CacheStore
from server.gateway.record import CallRecord
from server.storage import gateway_traffic as traffic
from server.storage.gateway_traffic import GatewayRequest

log = logging.getLogger("gantry.gateway")


def log_row(call: CallRecord) -> GatewayRequest:
    usage = call.usage
    return GatewayRequest(
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
            with unit_of_work(self.sessions) as uow:
                traffic.add_request(uow.db, log_row(call))
                if cache_save is not None:
                    self.cache.save(uow, cache_save)
                if cache_hit is not None:
                    self.cache.count_hit(uow, call.workspace_id, cache_hit)
        except SQLAlchemyError as exc:
            # The workspace may be gone, or the database busy: the call has been answered.
            log.warning("gateway call %s not recorded: %s", call.id, exc.__class__.__name__)


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
