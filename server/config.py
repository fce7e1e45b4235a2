"""Server configuration: one frozen object, read from ``GANTRY_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Config:
    """Everything ``create_app`` needs; tests build one directly, ``from_env`` serves operators."""

    database_url: str = ""  # empty: SQLite under ``var_dir``
    var_dir: Path = ROOT / "var"
    host: str = "127.0.0.1"
    port: int = 8080
    bootstrap_token: str | None = None
    openapi_enabled: bool = True
    registration_enabled: bool = True
    # Signs cursors. Random per process unless set, so cursors do not survive a restart
    # (or span gunicorn workers) without GANTRY_SECRET_KEY.
    secret_key: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    max_body_bytes: int = 1 << 20
    csrf_origins: frozenset[str] = frozenset()  # besides the server's own origin
    secure_cookies: bool = False
    login_rate_per_minute: int = 10
    auto_migrate: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``GANTRY_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        config = cls()
        origins = {o.strip().rstrip("/") for o in env.get("GANTRY_CSRF_ORIGINS", "").split(",")}
        return replace(
            config,
            database_url=env.get("GANTRY_DATABASE_URL", ""),
            var_dir=Path(env.get("GANTRY_VAR_DIR", str(config.var_dir))),
            host=env.get("GANTRY_HOST", config.host),
            port=int(env.get("GANTRY_PORT", config.port)),
            bootstrap_token=env.get("GANTRY_BOOTSTRAP_TOKEN") or None,
            openapi_enabled=_flag(env.get("GANTRY_OPENAPI_ENABLED"), True),
            registration_enabled=_flag(env.get("GANTRY_REGISTRATION_ENABLED"), True),
            secret_key=env.get("GANTRY_SECRET_KEY") or config.secret_key,
            max_body_bytes=int(env.get("GANTRY_MAX_BODY_BYTES", config.max_body_bytes)),
            csrf_origins=frozenset(o for o in origins if o),
            secure_cookies=_flag(env.get("GANTRY_SECURE_COOKIES"), False),
        )

    def with_(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (tests use this)."""
        return replace(self, **changes)
