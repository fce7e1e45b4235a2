"""Upstream clients over HTTP: one per wire format, both streaming, with a timeout per backend.

``openai``, ``openai_compatible``, ``gemini`` and ``ollama`` providers are reached through an
OpenAI-compatible chat completions endpoint, ``anthropic`` through the messages endpoint. A
failure is an ``UpstreamFailure``: ``retryable`` says whether another backend may be tried
(a connection that failed, a timeout, 429 or 5xx), its status what the client gets when none is
left. A stream is a generator that has sent nothing to anyone until its first event is taken,
so a failure there can still fail over; after that, a failure ends the client's stream.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import httpx
import orjson

from server.gateway import anthropic_wire, openai_wire
from server.gateway.chat import ChatRequest, ChatResult, StreamEvent
from server.gateway.config import BackendConfig, ProviderConfig
from server.gateway.errors import GatewayError
from server.gateway.sse import read_events

# Where each provider type answers when its provider names no base URL.
DEFAULT_BASE_URLS = {
    "openai": "https://api.openai.com/v1",
    "gemini": "https://generativelanguage.googleapis.com/v1beta/openai",
    "ollama": "http://127.0.0.1:11434/v1",
    "anthropic": "https://api.anthropic.com",
}
# A connection is given at most this long, whatever the backend's timeout.
CONNECT_TIMEOUT_S = 10.0


class UpstreamFailure(GatewayError):
    """An upstream that could not answer; ``retryable``: another backend may."""

    def __init__(self, status: int, message: str, *, retryable: bool, code: str) -> None:
        super().__init__(status, message, code=code)
        self.retryable = retryable


class Upstream(Protocol):
    """One way of asking a backend: a whole answer, or a stream of events."""

    def complete(self, request: ChatRequest, backend: BackendConfig) -> ChatResult: ...

    def stream(self, request: ChatRequest, backend: BackendConfig) -> Iterator[StreamEvent]: ...


def _timeout(backend: BackendConfig) -> httpx.Timeout:
    seconds = max(0.001, backend.timeout_ms / 1000)
    return httpx.Timeout(seconds, connect=min(seconds, CONNECT_TIMEOUT_S))


def _failure_of_status(status: int, body: bytes) -> UpstreamFailure:
    """The failure an upstream's error answer stands for (its own message kept)."""
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    message = openai_wire.error_message(parsed) or anthropic_wire.error_message(parsed)
    message = f"Upstream answered {status}" + (f": {message}" if message else ".")
    if status == 429:
        return UpstreamFailure(429, message, retryable=True, code="upstream_rate_limited")
    if status >= 500:
        return UpstreamFailure(502, message, retryable=True, code="upstream_error")
    if status in (401, 403):
        # The provider refused the gateway's own credentials: not the client's fault.
        return UpstreamFailure(502, message, retryable=False, code="upstream_auth_failed")
    if status in (400, 404, 413, 422):
        return UpstreamFailure(status, message, retryable=False, code="upstream_refused")
    return UpstreamFailure(502, message, retryable=False, code="upstream_error")


def _failure_of_exception(exc: httpx.HTTPError) -> UpstreamFailure:
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure(
            504, "The upstream did not answer in time.", retryable=True, code="upstream_timeout"
        )
    return UpstreamFailure(
        502,
        f"The upstream could not be reached ({exc.__class__.__name__}).",
        retryable=True,
        code="upstream_unreachable",
    )


class HttpUpstream:
    """What both wire formats share: the HTTP exchange, its errors and its stream."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def url(self, provider: ProviderConfig) -> str:
        raise NotImplementedError

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        raise NotImplementedError

    def body(self, request: ChatRequest, backend: BackendConfig) -> dict[str, Any]:
        raise NotImplementedError

    def parse(self, body: Any, backend: BackendConfig) -> ChatResult:
        raise NotImplementedError

    def events(self, lines: Iterator[bytes]) -> Iterator[StreamEvent]:
        raise NotImplementedError

    def _headers(self, provider: ProviderConfig) -> dict[str, str]:
        headers = {"content-type": "application/json", **self.headers(provider)}
        headers.update(provider.extra_headers)
        return headers

    def complete(self, request: ChatRequest, backend: BackendConfig) -> ChatResult:
        provider = backend.provider
        try:
            response = self.client.post(
                self.url(provider),
                content=orjson.dumps(self.body(request, backend)),
                headers=self._headers(provider),
                timeout=_timeout(backend),
            )
        except httpx.HTTPError as exc:
            raise _failure_of_exception(exc) from None
        if response.status_code != 200:
            raise _failure_of_status(response.status_code, response.content)
        try:
            parsed = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise UpstreamFailure(
                502, "The upstream answered with invalid JSON.", retryable=True, code="bad_upstream"
            ) from None
        return self.parse(parsed, backend)

    def stream(self, request: ChatRequest, backend: BackendConfig) -> Iterator[StreamEvent]:
        provider = backend.provider
        try:
            with self.client.stream(
                "POST",
                self.url(provider),
                content=orjson.dumps(self.body(request, backend)),
                headers=self._headers(provider),
                timeout=_timeout(backend),
            ) as response:
                if response.status_code != 200:
                    raise _failure_of_status(response.status_code, response.read())
                yield from self.events(response.iter_raw())
        except httpx.HTTPError as exc:
            raise _failure_of_exception(exc) from None


class OpenAIUpstream(HttpUpstream):
    """Chat completions: ``{base_url}/chat/completions`` with a bearer key."""

    def url(self, provider: ProviderConfig) -> str:
        base = provider.base_url or DEFAULT_BASE_URLS.get(provider.type)
        if not base:
            raise UpstreamFailure(
                502, "The provider has no base URL.", retryable=True, code="provider_misconfigured"
            )
        return base.rstrip("/") + "/chat/completions"

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        return {"authorization": f"Bearer {provider.api_key}"} if provider.api_key else {}

    def body(self, request: ChatRequest, backend: BackendConfig) -> dict[str, Any]:
        return openai_wire.emit_request(request, backend.upstream_model)

    def parse(self, body: Any, backend: BackendConfig) -> ChatResult:
        return openai_wire.parse_response(body, fallback_model=backend.upstream_model)

    def events(self, lines: Iterator[bytes]) -> Iterator[StreamEvent]:
        reader = openai_wire.StreamReader()
        for event in read_events(lines):
            yield from reader.read(event.data)
            if reader.done:
                return
        if not reader.finished:
            raise UpstreamFailure(
                502, "The upstream stream ended early.", retryable=True, code="upstream_cut"
            )


class AnthropicUpstream(HttpUpstream):
    """Messages: ``{base_url}/v1/messages`` with ``x-api-key``."""

    def url(self, provider: ProviderConfig) -> str:
        base = (provider.base_url or DEFAULT_BASE_URLS["anthropic"]).rstrip("/")
        return base + ("/messages" if base.endswith("/v1") else "/v1/messages")

    def headers(self, provider: ProviderConfig) -> dict[str, str]:
        headers = {"anthropic-version": anthropic_wire.API_VERSION}
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        return headers

    def body(self, request: ChatRequest, backend: BackendConfig) -> dict[str, Any]:
        return anthropic_wire.emit_request(request, backend.upstream_model)

    def parse(self, body: Any, backend: BackendConfig) -> ChatResult:
        return anthropic_wire.parse_response(body, fallback_model=backend.upstream_model)

    def events(self, lines: Iterator[bytes]) -> Iterator[StreamEvent]:
        reader = anthropic_wire.StreamReader()
        for event in read_events(lines):
            yield from reader.read(event.kind, event.data)
            if reader.done:
                return
        if not reader.finished:
            raise UpstreamFailure(
                502, "The upstream stream ended early.", retryable=True, code="upstream_cut"
            )


def upstreams(client: httpx.Client, local: Upstream) -> Mapping[str, Upstream]:
    """The upstream client of each provider type."""
    openai = OpenAIUpstream(client)
    return {
        "openai": openai,
        "openai_compatible": openai,
        "gemini": openai,
        "ollama": openai,
        "anthropic": AnthropicUpstream(client),
        "local": local,
    }


def new_http_client() -> httpx.Client:
    """One pooled client for every upstream (each backend brings its own timeout)."""
    return httpx.Client(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        follow_redirects=False,
    )
