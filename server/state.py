"""The per-app services handlers reach through ``request.state``; built by ``create_app``."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.config import Config
from server.domain.secrets import SecretBox
from server.runtime.auth import CredentialStore
from server.runtime.ownership import OwnerLookup, Ownership
from server.runtime.pagination import CursorCodec
from server.runtime.ratelimit import RateLimiter
from server.storage.db import Database
from server.storage.owners import OWNER_LOOKUPS
from server.storage.types import utcnow


@dataclass
class AppState:
    """Long-lived services of one app instance (no module-level globals)."""

    config: Config
    database: Database
    credentials: CredentialStore
    cursors: CursorCodec
    spec_document: dict[str, Any]
    login_limiter: RateLimiter
    # Seals and opens provider secrets (``server.secrets_key``).
    secret_box: SecretBox
    # The AI gateway's engine (``server.gateway.engine.Engine``), built by ``create_app``.
    gateway: Any = None
    # Each workspace's compiled gateway routes (``server.domain.gateway_config.CompiledRoutes``).
    gateway_routes: Any = None
    started_at: float = field(default_factory=time.monotonic)
    # "Now" for credential expiry: one clock, so tests can move it (tokens cannot be issued
    # already expired).
    clock: Callable[[], datetime] = field(default=utcnow)
    # The workspace that owns an item, by resource name (storage's; a test may bring its own).
    owner_lookups: Mapping[str, OwnerLookup] = field(default_factory=lambda: OWNER_LOOKUPS)
    # Origins allowed for cookie writes, from configuration, never from a request.
    allowed_origins: frozenset[str] = field(init=False)
    # The operations on flat item paths of ``spec_document`` (an unenforceable spec stops here).
    ownership: Ownership = field(init=False)

    def __post_init__(self) -> None:
        self.allowed_origins = self.config.allowed_origins()
        self.ownership = Ownership(self.spec_document, self.owner_lookups)
