"""``gantry serve``: run the API under gunicorn on GANTRY_HOST:GANTRY_PORT."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from gunicorn.app.base import BaseApplication

from server.app import create_app
from server.config import Config


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """Gunicorn driven from code, with the app built once in the master (``preload``), so
    migrations and the bootstrap run once before workers fork."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self._app = app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._app


def serve(args: argparse.Namespace) -> None:
    """Build the app from the environment and serve it until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = Config.from_env()
    host = getattr(args, "host", None) or config.host
    port = getattr(args, "port", None) or config.port
    # Built once in the master: workers inherit one cursor-signing key and one migrated schema.
    app = create_app(config)
    workers = max(1, int(getattr(args, "workers", 2) or 2))
    logging.getLogger("gantry").info(
        "serving on http://%s:%s/api/v1 (%d workers)", host, port, workers
    )
    _Gunicorn(
        app,
        {
            "bind": f"{host}:{port}",
            "workers": workers,
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
    ).run()
