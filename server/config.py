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
    # Seals provider secrets at rest: a key derived from GANTRY_SECRET_KEY when it is set, else
    # the key in ``secrets_key_file`` (default ``var_dir/secrets.key``, written with mode 0600 on
    # the first start that needs one).
    secrets_passphrase: str = ""
    secrets_key_file: Path | None = None
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
    # The AI gateway: each credential's default rate limit (a route may set its own) and how
    # long a stream may stay silent before a keep-alive comment.
    gateway_requests_per_minute: int = 120
    gateway_burst: int = 20
    gateway_keep_alive_s: float = 15.0
    # Runs: the queue's limits (PRODUCT §4.1), the server's executor threads per serving
    # process (0: none; run ``gantry executor`` instead) and where artifact bytes live
    # (default ``var_dir/artifacts``) up to what size.
    run_lease_ttl_s: float = 60.0
    run_queue_ttl_s: float = 24 * 3600.0
    run_max_attempts: int = 3
    run_max_duration_s: float = 3600.0
    run_cancel_grace_s: float = 30.0
    executor_threads: int = 2
    # How long a run-creating request with ``wait=true`` waits for its run to end.
    run_wait_s: float = 30.0
    artifacts_dir: Path | None = None
    artifact_max_bytes: int = 25 << 20
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
            secrets_passphrase=env.get("GANTRY_SECRET_KEY", ""),
            secrets_key_file=(
                Path(env["GANTRY_SECRETS_KEY_FILE"]) if env.get("GANTRY_SECRETS_KEY_FILE") else None
            ),
            max_body_bytes=int(env.get("GANTRY_MAX_BODY_BYTES", config.max_body_bytes)),
            public_url=env.get("GANTRY_PUBLIC_URL", "").strip(),
            csrf_origins=frozenset(o for o in origins if o),
            secure_cookies=_flag(env.get("GANTRY_SECURE_COOKIES"), False),
            redis_url=env.get("GANTRY_REDIS_URL", "").strip(),
            threads=max(1, int(env.get("GANTRY_THREADS", config.threads))),
            read_timeout_s=float(env.get("GANTRY_READ_TIMEOUT_S", config.read_timeout_s)),
            gateway_requests_per_minute=max(
                1, int(env.get("GANTRY_GATEWAY_RPM", config.gateway_requests_per_minute))
            ),
            gateway_burst=max(1, int(env.get("GANTRY_GATEWAY_BURST", config.gateway_burst))),
            gateway_keep_alive_s=float(
                env.get("GANTRY_GATEWAY_KEEPALIVE_S", config.gateway_keep_alive_s)
            ),
            run_lease_ttl_s=float(env.get("GANTRY_RUN_LEASE_TTL_S", config.run_lease_ttl_s)),
            run_queue_ttl_s=float(env.get("GANTRY_RUN_QUEUE_TTL_S", config.run_queue_ttl_s)),
            run_max_attempts=max(
                1, int(env.get("GANTRY_RUN_MAX_ATTEMPTS", config.run_max_attempts))
            ),
            run_max_duration_s=float(
                env.get("GANTRY_RUN_MAX_DURATION_S", config.run_max_duration_s)
            ),
            run_cancel_grace_s=float(
                env.get("GANTRY_RUN_CANCEL_GRACE_S", config.run_cancel_grace_s)
            ),
            run_wait_s=max(0.0, float(env.get("GANTRY_RUN_WAIT_S", config.run_wait_s))),
            executor_threads=max(
                0, int(env.get("GANTRY_EXECUTOR_THREADS", config.executor_threads))
            ),
            artifacts_dir=(
                Path(env["GANTRY_ARTIFACTS_DIR"]) if env.get("GANTRY_ARTIFACTS_DIR") else None
            ),
            artifact_max_bytes=int(env.get("GANTRY_ARTIFACT_MAX_BYTES", config.artifact_max_bytes)),
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

    def artifact_dir(self) -> Path:
        """Where artifact bytes are kept."""
        return self.artifacts_dir or self.var_dir / "artifacts"

    def key_file(self) -> Path:
        """Where the key that seals provider secrets is kept without GANTRY_SECRET_KEY."""
        return self.secrets_key_file or self.var_dir / "secrets.key"

    def with_(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (tests use this)."""
        return replace(self, **changes)
