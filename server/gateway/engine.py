"""The gateway engine: one call, from the client's request body to its answer.

In order: the rate limit (per credential, or the route's own), the request read in the
client's wire format, the route, then either a whole answer (from the cache, or from the
first backend that answers, failing over on connect errors, timeouts, 429 and 5xx) or a
stream. A stream fails over only until its first event: after that the client has bytes, and
an upstream failure ends the stream with an in-band error event in the client's format, never
with a clean end. Idle streams get keep-alive comments.

The engine knows neither HTTP frameworks nor the database: it returns an ``Answer`` (status,
headers, a JSON body or SSE frames, and what to do once the client has it), which
``server.gateway.responses`` turns into a response; the call's log entry and cache writes go
to the ``Recorder`` in that last step: written before ``on_close`` returns, or queued for the
engine's background writer by ``on_sent``, which an HTTP server runs.
"""

from __future__ import annotations

import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import orjson

from server.gateway import anthropic_wire, openai_wire, routing, sse
from server.gateway.cache import CachedAnswer, CacheStore, cache_key
from server.gateway.chat import ChatRequest, ChatResult, StreamEvent, Usage, UsageReport
from server.gateway.config import BackendConfig, RouteConfig
from server.gateway.errors import GatewayError
from server.gateway.ratelimit import GatewayLimiter, Verdict
from server.gateway.record import CallRecord, Recorder
from server.gateway.upstream import Upstream, UpstreamFailure
from server.gateway.usage import cost_usd
from server.security import new_id

log = logging.getLogger("gantry.gateway")

Api = Literal["openai", "anthropic"]
KEEP_ALIVE_S = 15.0


@dataclass(frozen=True)
class Caller:
    """Who calls: the workspace the credential acts in, and what to bill."""

    workspace_id: str
    credential_id: str | None
    run_id: str | None = None


@dataclass
class Answer:
    """What to send: a whole JSON ``body`` or SSE ``frames``, and what to do once it is sent
    (or the client went away): ``on_close``, which writes the call's log entry before it
    returns, or ``on_sent``, the same with the entry queued for the background writer (an HTTP
    server's choice: a keep-alive client's next request then never waits for the write)."""

    status: int
    headers: dict[str, str]
    body: Any = None
    frames: Iterator[bytes] | None = None
    on_close: Callable[[], None] = field(default=lambda: None)
    on_sent: Callable[[], None] | None = None

    def after_sending(self) -> Callable[[], None]:
        """What an HTTP server runs once the answer is sent."""
        return self.on_sent or self.on_close


def _no_op() -> None:
    return None


class Engine:
    """Serves gateway calls over upstream clients, a limiter, a cache and a recorder."""

    def __init__(
        self,
        *,
        upstreams: Mapping[str, Upstream],
        limiter: GatewayLimiter,
        cache: CacheStore,
        recorder: Recorder,
        queue: Recorder | None = None,
        database_idle: Callable[[], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        rng: random.Random | None = None,
        keep_alive_s: float = KEEP_ALIVE_S,
    ) -> None:
        self.upstreams = upstreams
        self.limiter = limiter
        self.cache = cache
        self.recorder = recorder
        # Where ``Answer.on_sent`` hands a finished call (the recorder itself without one).
        self.queue = queue or recorder
        # Told when a call has done its database work and turns to its upstreams.
        self.database_idle = database_idle or _no_op
        self.clock = clock
        self.rng = rng or random.Random()
        self.keep_alive_s = keep_alive_s

    # ── /models ─────────────────────────────────────────────────────────────────────────────

    def models(self, caller: Caller, routes: Sequence[RouteConfig]) -> Answer:
        """The models a client may ask for, in OpenAI's list format."""
        verdict = self.limiter.check(caller.credential_id or caller.workspace_id, None)
        if not verdict.allowed:
            return self._refusal("openai", _rate_limited(verdict), verdict.headers(), None)
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": route.name}
            for name, route in routing.routable_models(routes)
        ]
        return Answer(200, verdict.headers(), body={"object": "list", "data": data})

    # ── chat ────────────────────────────────────────────────────────────────────────────────

    def serve(
        self,
        api: Api,
        caller: Caller,
        body: Mapping[str, Any],
        routes: Sequence[RouteConfig],
        *,
        no_cache: bool = False,
        request_id: str | None = None,
    ) -> Answer:
        """Answer one chat request (``api`` is the format the client speaks)."""
        started = time.monotonic()
        model = body.get("model")
        route = routing.resolve(routes, model) if isinstance(model, str) else None
        record = CallRecord(
            id=new_id("gwr_"),
            workspace_id=caller.workspace_id,
            credential_id=caller.credential_id,
            run_id=caller.run_id,
            api=api,
            model=model if isinstance(model, str) and model else "unknown",
            stream=bool(body.get("stream")),
            created_at=self.clock(),
            request_id=request_id,
            route_id=route.id if route else None,
        )
        verdict = self.limiter.check(caller.credential_id or caller.workspace_id, route)
        headers = verdict.headers()
        if not verdict.allowed:
            return self._refusal(api, _rate_limited(verdict), headers, record, started)
        try:
            request = (
                openai_wire.parse_request(body)
                if api == "openai"
                else anthropic_wire.parse_request(body)
            )
            if route is None:
                raise GatewayError(
                    404,
                    f"No route matches the model {request.model!r}.",
                    code="model_not_found",
                    param="model",
                )
            order = routing.attempt_order(route, self.rng)
            self.database_idle()
            if request.stream:
                headers["X-Cache"] = "BYPASS"
                return self._stream(api, request, order, headers, record, started)
            return self._whole(
                api, caller, body, request, route, order, no_cache, headers, record, started
            )
        except GatewayError as error:
            return self._refusal(api, error, headers, record, started)

    def _whole(
        self,
        api: Api,
        caller: Caller,
        body: Mapping[str, Any],
        request: ChatRequest,
        route: RouteConfig,
        order: list[BackendConfig],
        no_cache: bool,
        headers: dict[str, str],
        record: CallRecord,
        started: float,
    ) -> Answer:
        cacheable = route.cache_enabled and not no_cache and bool(order)
        record.cache = "MISS" if cacheable else "BYPASS"
        if cacheable:
            first = order[0]
            key = self._key(api, caller, body, route, first)
            hit = self._lookup(caller.workspace_id, key)
            if hit is not None:
                record.cache = "HIT"
                record.upstream_model = hit.upstream_model
                record.backend_id = hit.backend_id
                record.usage = Usage(hit.prompt_tokens, hit.completion_tokens, hit.cached_tokens)
                close, sent = self._closers(record, started, cache_hit=key)
                return Answer(
                    200,
                    {**headers, "X-Cache": "HIT", "X-Cache-Key": key},
                    body=dict(hit.response),
                    on_close=close,
                    on_sent=sent,
                )
        result, backend = self._complete(request, order, record)
        answer_body = self._emit(api, result)
        headers["X-Cache"] = record.cache
        saved = None
        if cacheable:
            key = self._key(api, caller, body, route, backend)
            headers["X-Cache-Key"] = key
            saved = self._entry(key, caller, route, backend, request, api, answer_body, result)
        close, sent = self._closers(record, started, save=saved)
        return Answer(200, headers, body=answer_body, on_close=close, on_sent=sent)

    def _complete(
        self, request: ChatRequest, order: list[BackendConfig], record: CallRecord
    ) -> tuple[ChatResult, BackendConfig]:
        """The first backend's answer that comes, failing over on retryable failures."""
        last: GatewayError | None = None
        for backend in order:
            self._attempt(record, backend)
            try:
                result = self._upstream(backend).complete(request, backend)
            except UpstreamFailure as failure:
                record.failovers.append((backend.id, failure.message))
                last = failure
                if failure.retryable:
                    continue
                raise
            record.usage = result.usage
            record.cost_usd = cost_usd(backend.provider.type, result.usage)
            return result, backend
        raise last or _no_backend()

    def _stream(
        self,
        api: Api,
        request: ChatRequest,
        order: list[BackendConfig],
        headers: dict[str, str],
        record: CallRecord,
        started: float,
    ) -> Answer:
        record.cache = "BYPASS"
        last: GatewayError | None = None
        for backend in order:
            self._attempt(record, backend)
            events = self._upstream(backend).stream(request, backend)
            early: list[StreamEvent] = []
            try:
                # Nothing has reached the client yet: a failure until the first event the
                # client would see can still go to the next backend.
                for event in events:
                    early.append(event)
                    if not isinstance(event, UsageReport):
                        break
            except UpstreamFailure as failure:
                _close(events)
                record.failovers.append((backend.id, failure.message))
                last = failure
                if failure.retryable:
                    continue
                raise
            except BaseException:
                _close(events)
                raise
            state = _StreamState(record, started, backend.provider.type)
            frames = self._frames(api, request, self._paced(early, events, state), state)
            return Answer(
                200,
                {**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
                frames=frames,
                on_close=functools.partial(self._finish_stream, state, events, self.recorder),
                on_sent=functools.partial(self._finish_stream, state, events, self.queue),
            )
        raise last or _no_backend()

    def _paced(
        self, early: list[StreamEvent], events: Iterator[StreamEvent], state: _StreamState
    ) -> Iterator[StreamEvent | None]:
        """The events already read, at once (the first byte waits for no thread), then the
        rest through a pump (``None``: time for a keep-alive comment)."""
        yield from early
        pump = _Pump(events, self.keep_alive_s)
        state.pump = pump
        yield from pump

    def _frames(
        self,
        api: Api,
        request: ChatRequest,
        items: Iterator[StreamEvent | None],
        state: _StreamState,
    ) -> Iterator[bytes]:
        """The client's SSE frames for the upstream's events (see the module doc)."""
        created = int(time.time())
        openai = (
            openai_wire.StreamWriter(
                id=_completion_id(),
                model=state.record.upstream_model or request.model,
                created=created,
                include_usage=request.include_usage,
            )
            if api == "openai"
            else None
        )
        anthropic = (
            anthropic_wire.StreamWriter(
                id=new_id("msg_"), model=state.record.upstream_model or request.model
            )
            if api == "anthropic"
            else None
        )
        started = False
        try:
            for item in items:
                if item is None:
                    yield sse.KEEP_ALIVE
                    continue
                if isinstance(item, UsageReport):
                    state.usage = state.usage.merge(item.usage)
                    continue
                if not started:
                    started = True
                    if openai is not None:
                        yield from (sse.data(c) for c in openai.start())
                    elif anthropic is not None:
                        yield from (sse.event(k, p) for k, p in anthropic.start(state.usage))
                if openai is not None:
                    yield from (sse.data(c) for c in openai.write(item))
                elif anthropic is not None:
                    yield from (sse.event(k, p) for k, p in anthropic.write(item))
            if not started:
                if openai is not None:
                    yield from (sse.data(c) for c in openai.start())
                elif anthropic is not None:
                    yield from (sse.event(k, p) for k, p in anthropic.start(state.usage))
            if openai is not None:
                yield from (sse.data(c) for c in openai.end(state.usage))
                yield sse.DONE
            elif anthropic is not None:
                yield from (sse.event(k, p) for k, p in anthropic.end(state.usage))
            state.complete = True
        except GatewayError as failure:
            # After the first byte: the honest end is an error event, not a clean finish.
            state.record.fail(failure.status, f"Stream failed after the first byte: {failure}")
            if openai is not None:
                yield sse.data(openai_wire.emit_error(failure))
            else:
                yield sse.event("error", anthropic_wire.emit_error(failure))
        except Exception as failure:  # a bug or an unexpected upstream: still end honestly
            log.exception("gateway stream failed")
            error = GatewayError(502, "The stream failed.", code="stream_failed")
            state.record.fail(502, f"Stream failed: {failure.__class__.__name__}")
            if openai is not None:
                yield sse.data(openai_wire.emit_error(error))
            else:
                yield sse.event("error", anthropic_wire.emit_error(error))

    def _finish_stream(
        self, state: _StreamState, events: Iterator[StreamEvent], recorder: Recorder
    ) -> None:
        if state.pump is not None:
            state.pump.close()
        else:
            _close(events)
        record = state.record
        if not state.complete and record.error is None:
            record.fail(499, "The client closed the stream before its end.")
        record.usage = state.usage
        record.cost_usd = cost_usd(state.provider_type, state.usage)
        self._closer(recorder, record, state.started)()

    # ── helpers ─────────────────────────────────────────────────────────────────────────────

    def _upstream(self, backend: BackendConfig) -> Upstream:
        upstream = self.upstreams.get(backend.provider.type)
        if upstream is None:
            raise UpstreamFailure(
                502,
                f"No client for provider type {backend.provider.type!r}.",
                retryable=True,
                code="provider_misconfigured",
            )
        return upstream

    @staticmethod
    def _attempt(record: CallRecord, backend: BackendConfig) -> None:
        record.backend_id = backend.id
        record.upstream_model = backend.upstream_model

    def _emit(self, api: Api, result: ChatResult) -> dict[str, Any]:
        if api == "openai":
            return openai_wire.emit_response(result, id=_completion_id(), created=int(time.time()))
        return anthropic_wire.emit_response(result, id=new_id("msg_"))

    @staticmethod
    def _key(
        api: Api,
        caller: Caller,
        body: Mapping[str, Any],
        route: RouteConfig,
        backend: BackendConfig,
    ) -> str:
        return cache_key(
            body,
            api=api,
            workspace_id=caller.workspace_id,
            route_id=route.id,
            backend_id=backend.id,
            upstream_model=backend.upstream_model,
        )

    def _lookup(self, workspace_id: str, key: str) -> CachedAnswer | None:
        try:
            return self.cache.lookup(workspace_id, key, self.clock())
        except Exception:  # a cache that cannot be read is a miss, not a failed call
            log.warning("gateway cache lookup failed", exc_info=True)
            return None

    def _entry(
        self,
        key: str,
        caller: Caller,
        route: RouteConfig,
        backend: BackendConfig,
        request: ChatRequest,
        api: Api,
        body: dict[str, Any],
        result: ChatResult,
    ) -> CachedAnswer:
        now = self.clock()
        return CachedAnswer(
            key=key,
            workspace_id=caller.workspace_id,
            route_id=route.id,
            backend_id=backend.id,
            model=request.model,
            upstream_model=backend.upstream_model,
            api=api,
            response=body,
            prompt_tokens=result.usage.input_tokens,
            completion_tokens=result.usage.output_tokens,
            cached_tokens=result.usage.cache_read_tokens,
            size_bytes=len(orjson.dumps(body)),
            hits=0,
            created_at=now,
            expires_at=now + timedelta(seconds=max(1, route.cache_ttl_seconds)),
        )

    def _refusal(
        self,
        api: Api,
        error: GatewayError,
        headers: dict[str, str],
        record: CallRecord | None,
        started: float | None = None,
    ) -> Answer:
        body = (
            openai_wire.emit_error(error)
            if api == "openai"
            else anthropic_wire.emit_error(error, record.request_id if record else None)
        )
        close, sent = _no_op, None
        if record is not None:
            record.fail(error.status, error.message)
            close, sent = self._closers(record, started or time.monotonic())
        return Answer(
            error.status, {**headers, **error.headers}, body=body, on_close=close, on_sent=sent
        )

    def _closers(
        self,
        record: CallRecord,
        started: float,
        *,
        save: CachedAnswer | None = None,
        cache_hit: str | None = None,
    ) -> tuple[Callable[[], None], Callable[[], None]]:
        """An answer's ``on_close`` and ``on_sent`` for ``record``. A call that stored or hit
        a cache entry is written at once either way: the next identical call, maybe on the same
        connection, must find the entry, and the cache's statistics count the hit."""
        close = self._closer(self.recorder, record, started, save, cache_hit)
        if save is not None or cache_hit is not None:
            return close, close
        return close, self._closer(self.queue, record, started)

    @staticmethod
    def _closer(
        recorder: Recorder,
        record: CallRecord,
        started: float,
        save: CachedAnswer | None = None,
        cache_hit: str | None = None,
    ) -> Callable[[], None]:
        def close() -> None:
            record.latency_ms = int((time.monotonic() - started) * 1000)
            try:
                recorder.record(record, cache_save=save, cache_hit=cache_hit)
            except Exception:  # the client has its answer; a lost log line is only logged
                log.exception("gateway call %s not recorded", record.id)

        return close


@dataclass
class _StreamState:
    record: CallRecord
    started: float
    provider_type: str
    usage: Usage = field(default_factory=Usage)
    complete: bool = False
    pump: _Pump | None = None


class _Pump:
    """Reads a stream's events on a thread of its own, so the response can send a keep-alive
    comment whenever the upstream has been silent for ``interval`` seconds (``None`` items)."""

    _END = object()

    def __init__(self, events: Iterator[StreamEvent], interval: float) -> None:
        self.events = events
        self.interval = interval
        self.items: queue.Queue[Any] = queue.Queue(maxsize=256)
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="gateway-stream", daemon=True)
        self.thread.start()

    def _put(self, item: Any) -> bool:
        while not self.stopped.is_set():
            try:
                self.items.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for event in self.events:
                if not self._put(event):
                    break
            self._put(self._END)
        except BaseException as exc:  # handed to the response thread, which ends the stream
            self._put(exc)
        finally:
            _close(self.events)

    def __iter__(self) -> Iterator[StreamEvent | None]:
        while True:
            try:
                item = self.items.get(timeout=self.interval)
            except queue.Empty:
                yield None
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self.stopped.set()


def _close(events: Iterable[Any]) -> None:
    close = getattr(events, "close", None)
    if close is not None:
        try:
            close()
        except Exception:
            log.debug("closing an upstream stream failed", exc_info=True)


def _completion_id() -> str:
    return "chatcmpl-" + new_id("cmpl_").removeprefix("cmpl_")


def _rate_limited(verdict: Verdict) -> GatewayError:
    return GatewayError(
        429,
        f"Rate limit exceeded; retry in {verdict.retry_after_s} s.",
        code="rate_limit_exceeded",
    )


def _no_backend() -> GatewayError:
    return GatewayError(503, "The route has no enabled backend.", code="no_backend")
