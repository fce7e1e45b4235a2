"""The per-app services handlers reach through ``request.state``; built by ``create_app``."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from server.config import Config
from server.runtime.auth import CredentialStore
from server.runtime.pagination import CursorCodec
from server.runtime.ratelimit import RateLimiter
from server.storage.db import Database


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

    def allowed_origins(self, host_url: str) -> frozenset[str]:
        """Origins allowed for cookie writes: the server's own, plus configured ones."""
        return self.config.csrf_origins | {host_url.rstrip("/")}
