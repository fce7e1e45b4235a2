"""What the request log keeps of one gateway call, and who writes it.

The engine fills a ``CallRecord`` while it serves a call and hands it to a ``Recorder`` once
the client has its answer (after the last byte of a stream). Behind an HTTP server that is
the engine's queue (``server.gateway.record_queue``), written by a thread of its own, so the log
never adds a database round trip a client waits for, not even its next request on the same
connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from server.gateway.cache import CachedAnswer
from server.gateway.chat import Usage

ERROR_MAX = 2000


@dataclass
class CallRecord:
    id: str
    workspace_id: str
    credential_id: str | None
    run_id: str | None
    api: str  # openai | anthropic
    model: str
    stream: bool
    created_at: datetime
    request_id: str | None = None
    upstream_model: str | None = None
    route_id: str | None = None
    backend_id: str | None = None
    status_code: int = 200
    cache: str | None = None  # HIT | MISS | BYPASS
    usage: Usage = field(default_factory=Usage)
    cost_usd: float | None = None
    latency_ms: int = 0
    error: str | None = None
    # Backend failures the call failed over from: (backend id, message).
    failovers: list[tuple[str, str]] = field(default_factory=list)

    def fail(self, status: int, message: str) -> None:
        self.status_code = status
        self.error = message[:ERROR_MAX]


@dataclass(frozen=True, slots=True)
class Finished:
    """A finished call, with the cache entry it stored or the key of the one it hit."""

    call: CallRecord
    cache_save: CachedAnswer | None
    cache_hit: str | None


class Recorder(Protocol):
    """Writes a finished call: its log entry, and the cache entry it stored or hit."""

    def record(
        self, call: CallRecord, *, cache_save: CachedAnswer | None, cache_hit: str | None
    ) -> None: ...
