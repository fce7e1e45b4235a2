"""Probes behind the control plane's ``provider test`` and ``backend test``: one small call
through the same upstream clients the data plane uses, its outcome as a value (a failing
upstream is an outcome, not an exception).

A backend is probed with a one-token completion of its model. A provider is asked for its
model list (``GET {base}/models``); one that has no such endpoint, or a ``local`` one, is
probed with a one-token completion of its first listed model instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson

from server.gateway import anthropic_wire
from server.gateway.chat import ChatRequest, Message, TextPart
from server.gateway.config import BackendConfig, ProviderConfig
from server.gateway.errors import GatewayError
from server.gateway.local import LocalUpstream
from server.gateway.upstream import (
    CONNECT_TIMEOUT_S,
    DEFAULT_BASE_URLS,
    Upstream,
    new_http_client,
    upstreams,
)

# A probe waits at most this long, whatever the backend's own timeout.
PROBE_TIMEOUT_MS = 10_000
# The model a provider is probed with when it lists none (any name works for ``local``).
FALLBACK_MODEL = "probe"
_PING = ChatRequest(
    model=FALLBACK_MODEL, messages=(Message("user", (TextPart("ping"),)),), max_tokens=1
)


@dataclass(frozen=True)
class ProbeResult:
    """What a probe found: whether the upstream answered, how fast, and what it lists."""

    ok: bool
    latency_ms: int | None
    error: str | None = None
    models: tuple[str, ...] = ()


def probe_backend(
    backend: BackendConfig, *, client_factory: Callable[[], httpx.Client] = new_http_client
) -> ProbeResult:
    """A one-token completion of the backend's model, within ``PROBE_TIMEOUT_MS``."""
    backend = replace(backend, timeout_ms=min(backend.timeout_ms, PROBE_TIMEOUT_MS))
    with client_factory() as client:
        upstream = upstreams(client, LocalUpstream())[backend.provider.type]
        return _complete(upstream, backend)


def probe_provider(
    provider: ProviderConfig,
    models: Sequence[str],
    *,
    client_factory: Callable[[], httpx.Client] = new_http_client,
) -> ProbeResult:
    """The provider's model list, or a one-token completion where it has none."""
    backend = BackendConfig(
        id="probe",
        provider=provider,
        upstream_model=models[0] if models else FALLBACK_MODEL,
        timeout_ms=PROBE_TIMEOUT_MS,
    )
    with client_factory() as client:
        upstream = upstreams(client, LocalUpstream())[provider.type]
        if provider.type == "local":
            return replace(_complete(upstream, backend), models=tuple(models))
        started = time.monotonic()
        try:
            response = client.get(
                _models_url(provider),
                headers=_headers(provider),
                timeout=httpx.Timeout(PROBE_TIMEOUT_MS / 1000, connect=CONNECT_TIMEOUT_S),
            )
        except httpx.HTTPError as exc:
            return ProbeResult(False, None, _unreachable(exc))
        latency = _elapsed_ms(started)
        if response.status_code in (404, 405):  # no model list here: try a completion
            return replace(_complete(upstream, backend), models=tuple(models))
        if response.status_code != 200:
            return ProbeResult(False, latency, _refusal(response))
        return ProbeResult(True, latency, None, _listed(response.content))


def _complete(upstream: Upstream, backend: BackendConfig) -> ProbeResult:
    started = time.monotonic()
    try:
        upstream.complete(replace(_PING, model=backend.upstream_model), backend)
    except GatewayError as failure:
        return ProbeResult(False, _elapsed_ms(started), failure.message)
    return ProbeResult(True, _elapsed_ms(started))


def _models_url(provider: ProviderConfig) -> str:
    base = (provider.base_url or DEFAULT_BASE_URLS.get(provider.type, "")).rstrip("/")
    if provider.type == "anthropic" and not base.endswith("/v1"):
        base += "/v1"
    return base + "/models"


def _headers(provider: ProviderConfig) -> dict[str, str]:
    headers: dict[str, str] = {}
    if provider.type == "anthropic":
        headers["anthropic-version"] = anthropic_wire.API_VERSION
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
    elif provider.api_key:
        headers["authorization"] = f"Bearer {provider.api_key}"
    headers.update(provider.extra_headers)
    return headers


def _listed(body: bytes) -> tuple[str, ...]:
    """The model ids of an OpenAI or Anthropic model list (``{"data": [{"id": …}]}``)."""
    try:
        parsed: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, list):
        return ()
    return tuple(
        str(item["id"])
        for item in data
        if isinstance(item, dict) and isinstance(item.get("id"), str)
    )


def _refusal(response: httpx.Response) -> str:
    try:
        parsed = orjson.loads(response.content) if response.content else None
    except orjson.JSONDecodeError:
        parsed = None
    detail = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        detail = parsed["error"].get("message")
    return f"The provider answered {response.status_code}" + (f": {detail}" if detail else ".")


def _unreachable(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "The provider did not answer in time."
    return f"The provider could not be reached ({exc.__class__.__name__})."


def _elapsed_ms(started: float) -> int:
    return max(0, round((time.monotonic() - started) * 1000))
