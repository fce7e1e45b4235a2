"""Where the contract suite sends its requests: a server it builds itself, or any live server.

Both modes give the rest of the suite the same thing, a ``Target``: a base URL, a superadmin
token and an HTTP session. Every part of the suite talks HTTP to it, so the in-process run and
the live run execute exactly the same code.

* **in-process** (the default, ``make test``): the app is built here by ``create_app`` on a fresh
  database (SQLite in a temporary directory, or a fresh schema of the PostgreSQL named by
  ``GANTRY_TEST_DATABASE_URL``), with the bootstrap superadmin, and served from a thread of this
  process on 127.0.0.1. ``build_app`` accepts the ``guard``/``handlers`` wrappers and a WSGI
  middleware that the planted-fault self-test uses, and an ``extend`` step that adds the routes
  of another document to the app (a resource added to Gantry's, in the suite's own tests).
* **live** (``make contract BASE_URL=... TOKEN=...``): ``GANTRY_CONTRACT_BASE_URL`` names the
  server (its origin, or the API root ending in ``/api/v1``) and ``GANTRY_CONTRACT_TOKEN`` a
  personal access token of a superadmin with every scope (e.g. ``GANTRY_BOOTSTRAP_TOKEN``).
"""

from __future__ import annotations

import os
import secrets
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from werkzeug.serving import WSGIRequestHandler, make_server

from contract_tests.clock import SuiteClock
from contract_tests.live import free_port

BASE_URL_ENV = "GANTRY_CONTRACT_BASE_URL"
TOKEN_ENV = "GANTRY_CONTRACT_TOKEN"
PG_URL_ENV = "GANTRY_TEST_DATABASE_URL"
API_ROOT = "/api/v1"
BOOTSTRAP_TOKEN = "pat_" + "C0ntractSuite" * 3 + "0"
# In-process only: cursors are signed with this key, and the per-IP limit on the auth endpoints
# is lifted so the suite's many sign-ins are not refused (the live mode copes with 429 instead).
SECRET_KEY = "contract-suite"
Middleware = Callable[[Any], Any]
Extension = Callable[[Any], None]  # adds routes to the app before it is served


@dataclass
class Target:
    """A running Gantry server as the suite sees it."""

    base_url: str  # the origin, e.g. http://127.0.0.1:8080
    token: str  # a superadmin PAT with every scope
    mode: str  # "in-process" or "live"
    backend: str = "unknown"  # "sqlite", "postgresql" or "unknown" (live)
    http: requests.Session = field(default_factory=requests.Session)
    clock: SuiteClock | None = None  # the server's clock, when the suite controls it (in-process)

    @property
    def api_url(self) -> str:
        """The API root, the base URL of the spec's paths."""
        return self.base_url + API_ROOT

    @property
    def is_live(self) -> bool:
        return self.mode == "live"

    def url(self, path: str) -> str:
        """An absolute URL for an API path such as ``/workspaces``."""
        return self.api_url + path

    def spec_document(self) -> dict[str, Any]:
        """The OpenAPI document the server serves (the suite's source of truth)."""
        response = self.http.get(self.url("/openapi.json"), timeout=30)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


def live_settings() -> tuple[str, str] | None:
    """``(base_url, token)`` when the suite is pointed at a live server, else None."""
    base_url = os.environ.get(BASE_URL_ENV, "").strip().rstrip("/")
    if not base_url:
        return None
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise RuntimeError(f"{BASE_URL_ENV} is set but {TOKEN_ENV} is not (a superadmin PAT)")
    if base_url.endswith(API_ROOT):
        base_url = base_url[: -len(API_ROOT)]
    return base_url, token


# ── databases ─────────────────────────────────────────────────────────────────────────────────


def backends() -> list[str]:
    """The databases the in-process suite runs on: SQLite, plus PostgreSQL when configured."""
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV, "").strip() else ["sqlite"]


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """A database URL for one run: a new SQLite file, or a new PostgreSQL schema (dropped after).

    An unreachable PostgreSQL raises: a configured database that cannot be used fails the run.
    """
    if backend == "sqlite":
        var_dir = Path(tempfile.mkdtemp(prefix="gantry-contract-"))
        yield f"sqlite:///{var_dir / 'contract.db'}"
        return
    from contract_tests.pg import temporary_schema

    base = os.environ.get(PG_URL_ENV, "").strip()
    if not base:
        raise RuntimeError(f"backend postgresql needs {PG_URL_ENV}")
    with temporary_schema(base) as url:
        yield url


# ── the in-process server ─────────────────────────────────────────────────────────────────────


def build_app(
    database_url: str,
    *,
    guard: Callable[[Any], Any] | None = None,
    handlers: Callable[[Any], Any] | None = None,
    public_url: str = "",
    extend: Extension | None = None,
) -> Any:
    """The app under test on ``database_url``, with the bootstrap superadmin of BOOTSTRAP_TOKEN;
    ``public_url`` is the origin its cookie writes must come from; ``extend`` adds routes."""
    os.environ.setdefault("GANTRY_ARGON2_PROFILE", "fast")
    from server.app import create_app
    from server.config import Config

    var_dir = Path(tempfile.mkdtemp(prefix="gantry-contract-var-"))
    config = Config(
        database_url=database_url,
        var_dir=var_dir,
        bootstrap_token=BOOTSTRAP_TOKEN,
        secret_key=SECRET_KEY,
        login_rate_per_minute=1_000_000,
        public_url=public_url,
        # No executor runs here: a run-creating request with wait=true gives up after this.
        run_wait_s=0.5,
    )
    app = create_app(config, guard=guard, handlers=handlers)
    if extend is not None:
        extend(app)
    return app


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        pass


@contextmanager
def serve_in_thread(app: Any, middleware: Middleware | None = None, port: int = 0) -> Iterator[str]:
    """Serve ``app`` (wrapped in ``middleware``) on 127.0.0.1:``port`` (0: a free one); yield
    its origin."""
    wsgi = middleware(app.wsgi_app) if middleware is not None else app.wsgi_app
    server = make_server("127.0.0.1", port, wsgi, threaded=True, request_handler=_QuietHandler)
    server.daemon_threads = True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, name="contract-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@contextmanager
def in_process_target(
    backend: str = "sqlite",
    *,
    guard: Callable[[Any], Any] | None = None,
    handlers: Callable[[Any], Any] | None = None,
    middleware: Middleware | None = None,
    extend: Extension | None = None,
) -> Iterator[Target]:
    """Build the app on a fresh database and serve it from this process."""
    with fresh_database(backend) as url:
        # The port is chosen first: the app's CSRF allow-list is its public origin.
        port = free_port()
        app = build_app(
            url,
            guard=guard,
            handlers=handlers,
            public_url=f"http://127.0.0.1:{port}",
            extend=extend,
        )
        try:
            with serve_in_thread(app, middleware, port) as origin:
                clock = SuiteClock()
                app.extensions["gantry"].clock = clock.now
                target = Target(
                    base_url=origin,
                    token=BOOTSTRAP_TOKEN,
                    mode="in-process",
                    backend=backend,
                    clock=clock,
                )
                try:
                    yield target
                finally:
                    target.http.close()
        finally:
            app.extensions["gantry"].database.engine.dispose()


@contextmanager
def open_target(backend: str = "sqlite") -> Iterator[Target]:
    """The live server when one is configured, else an in-process one on ``backend``."""
    live = live_settings()
    if live is None:
        with in_process_target(backend) as target:
            yield target
        return
    base_url, token = live
    target = Target(base_url=base_url, token=token, mode="live")
    try:
        yield target
    finally:
        target.http.close()


def run_id() -> str:
    """A short random tag that keeps the names this run creates unique on a shared server."""
    return secrets.token_hex(3)
