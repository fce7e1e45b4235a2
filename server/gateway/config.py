"""The gateway's configuration as the data plane reads it: plain frozen values, no ORM.

The control plane stores providers, backends and routes; ``server.domain.gateway_config.
load_routes(uow, workspace_id)`` turns them into these (every route, enabled or not, ordered by
priority, secrets decrypted) for the engine in ``server.gateway``, which never sees a row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

ProviderType = Literal["openai", "anthropic", "openai_compatible", "gemini", "ollama", "local"]
Strategy = Literal["failover", "weighted"]

# Provider types reached through an OpenAI-compatible chat completions endpoint.
OPENAI_WIRE_TYPES = frozenset({"openai", "openai_compatible", "gemini", "ollama"})


@dataclass(frozen=True)
class ProviderConfig:
    """Where and how to reach one upstream: its wire format (``type``), base URL and secrets."""

    id: str
    type: ProviderType
    base_url: str | None
    api_key: str | None  # decrypted
    extra_headers: Mapping[str, str] = field(default_factory=dict)  # decrypted


@dataclass(frozen=True)
class BackendConfig:
    """A provider plus the model asked of it, as one member of a route."""

    id: str
    provider: ProviderConfig
    upstream_model: str
    weight: int = 1
    timeout_ms: int = 60_000
    enabled: bool = True
    priority: int = 0  # its priority within the route (lower is tried first)


@dataclass(frozen=True)
class RouteConfig:
    """Which requested models a route serves, by which backends, with what cache and limits."""

    id: str
    name: str
    model_patterns: tuple[str, ...]
    priority: int
    enabled: bool
    strategy: Strategy
    backends: tuple[BackendConfig, ...]
    cache_enabled: bool = False
    cache_ttl_seconds: int = 300
    requests_per_minute: int | None = None
    burst: int | None = None
