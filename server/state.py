"""The per-app services handlers reach through ``request.state``; built by ``create_app``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.config import Config
from server.runtime.auth import CredentialStore
from server.runtime.pagination import CursorCodec
from server.runtime.ratelimit import RateLimiter
from server.storage.db import Database
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
    started_at: float = field(default_factory=time.monotonic)
    # "Now" for credential expiry: one clock, so tests can move it (tokens cannot be issued
    # already expired).
    clock: Callable[[], datetime] = field(default=utcnow)
    # Origins allowed for cookie writes, from configuration, never from a request.
    allowed_origins: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.allowed_origins = self.config.allowed_origins()
