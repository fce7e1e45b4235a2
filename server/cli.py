"""``gantry serve``: run the API under gunicorn on GANTRY_HOST:GANTRY_PORT, each worker with
the run executor's threads; ``gantry executor``: the run executor alone."""

from __future__ import annotations

import argparse
import logging
import signal
from typing import Any

from gunicorn.app.base import BaseApplication

from server import executor
from server.app import create_app
from server.config import Config
from server.secrets_key import SecretKeyError
from server.serving.redact import RedactingLogger
from server.serving.worker import GantryWorker


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """Gunicorn driven from code, with the app built once in the master (``preload``), so
    migrations and the bootstrap run once before workers fork."""

    def __init__(self, app: Any, options: dict[str, Any], *, read_timeout_s: float) -> None:
        self._app = app
        self._options = options
        self.read_timeout_s = read_timeout_s  # what ``GantryWorker`` reads
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._app


_EXECUTOR_KEY = "gantry.executor"


def _start_executor(worker: Any) -> None:
    state = worker.wsgi.extensions["gantry"]
    if state.config.executor_threads > 0:
        worker.wsgi.extensions[_EXECUTOR_KEY] = executor.for_app(state).start()


def _stop_executor(_server: Any, worker: Any) -> None:
    running = worker.wsgi.extensions.get(_EXECUTOR_KEY) if worker.wsgi is not None else None
    if running is not None:
        running.stop(timeout=5.0)


def run_executor(args: argparse.Namespace) -> None:
    """Execute queued runs in the foreground until SIGINT or SIGTERM (migrating the database
    first, as ``serve`` does)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config.from_env()
    state = create_app(config).extensions["gantry"]
    threads = getattr(args, "threads", None)
    running = executor.for_app(state, threads=threads or max(1, config.executor_threads)).start()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: running.stop(timeout=10.0))
    running.wait()


def serve(args: argparse.Namespace) -> None:
    """Build the app from the environment and serve it until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config.from_env()
    host = getattr(args, "host", None) or config.host
    port = getattr(args, "port", None) or config.port
    # Where it listens is part of the configuration: the default CSRF allow-list derives from it.
    config = config.with_(host=host, port=int(port))
    # Built once in the master: workers inherit one cursor-signing key and one migrated schema.
    try:
        app = create_app(config)
    except SecretKeyError as refused:  # an operator's to fix: said plainly, not as a traceback
        raise SystemExit(f"gantry serve: {refused}") from None
    workers = max(1, int(getattr(args, "workers", 2) or 2))
    logging.getLogger("gantry").info(
        "serving on http://%s:%s/api/v1 (%d workers, %d threads each, read timeout %g s)",
        host,
        port,
        workers,
        config.threads,
        config.read_timeout_s,
    )
    _Gunicorn(
        app,
        {
            # Each worker executes runs too (threads started after the fork, with the
            # worker's own connection pool), and lets them go when it exits.
            "post_worker_init": _start_executor,
            "worker_exit": _stop_executor,
            "bind": f"{host}:{port}",
            "workers": workers,
            # Threads hold slow clients and open streams; see ``server.serving.worker``.
            "worker_class": GantryWorker,
            "threads": config.threads,
            "logger_class": RedactingLogger,
            "preload_app": True,
            "accesslog": "-",
            "errorlog": "-",
            "timeout": 60,
            "graceful_timeout": 10,
            # The spec bounds every parameter; its longest legal query (a 320-character email,
            # UTF-8 and percent-encoded) needs more than gunicorn's default 4094-byte request line.
            "limit_request_line": 8190,
            "control_socket_disable": True,
        },
        read_timeout_s=config.read_timeout_s,
    ).run()
