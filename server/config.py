"""Server configuration: one frozen object, read from ``GANTRY_*`` environment variables."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
# Hosts a browser on the same machine reaches under either loopback name; the wildcard
# addresses listen on loopback too.
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """The origin of ``url`` as a browser sends it in ``Origin``: ``scheme://host[:port]``,
    lower case, without a path or the scheme's default port."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = parts.port
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


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
    # The origin browsers reach the server at; empty: http://<host>:<port> (and, on a loopback
    # host, the same port under both 127.0.0.1 and localhost).
    public_url: str = ""
    csrf_origins: frozenset[str] = frozenset()  # besides the public origin
    secure_cookies: bool = False
    login_rate_per_minute: int = 10
    # Shared state (rate limits) lives in Redis when set, else in the database.
    redis_url: str = ""
    # gunicorn threads per worker: a slow client or an open stream holds one thread, not a worker.
    threads: int = 16
    # Seconds a client has to send a request's headers and body; then 408 and the connection closes.
    read_timeout_s: float = 10.0
    auto_migrate: bool = True
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read ``GANTRY_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        config = cls()
        origins = {o.strip() for o in env.get("GANTRY_CSRF_ORIGINS", "").split(",")}
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
            public_url=env.get("GANTRY_PUBLIC_URL", "").strip(),
            csrf_origins=frozenset(o for o in origins if o),
            secure_cookies=_flag(env.get("GANTRY_SECURE_COOKIES"), False),
            redis_url=env.get("GANTRY_REDIS_URL", "").strip(),
            threads=max(1, int(env.get("GANTRY_THREADS", config.threads))),
            read_timeout_s=float(env.get("GANTRY_READ_TIMEOUT_S", config.read_timeout_s)),
        )

    def allowed_origins(self) -> frozenset[str]:
        """Origins allowed for cookie-authenticated writes: the public origin plus the configured
        extra ones. Never taken from a request, whose Host header the client chooses."""
        if self.public_url:
            own = {origin_of(self.public_url)}
        elif self.host in _LOOPBACK_HOSTS:
            own = {f"http://{name}:{self.port}" for name in ("127.0.0.1", "localhost")}
        else:
            own = {origin_of(f"http://{self.host}:{self.port}")}
        return frozenset(own | {origin_of(o) for o in self.csrf_origins})

    def with_(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (tests use this)."""
        return replace(self, **changes)
