"""A live server for tests that need a real socket: `gantry serve` (gunicorn) on 127.0.0.1."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

GANTRY = Path(sys.executable).with_name("gantry")


@dataclass(frozen=True)
class LiveServer:
    """A running server: where it listens and the bootstrap token that drives it."""

    base_url: str
    token: str
    log: Path

    @property
    def api_url(self) -> str:
        """The base URL of the API (the spec's server URL)."""
        return f"{self.base_url}/api/v1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def live_server(
    var_dir: Path,
    token: str,
    *,
    database_url: str = "",
    environ: Mapping[str, str] | None = None,
) -> Iterator[LiveServer]:
    """Start the server as an operator does; wait (at most 60 s) until /health answers.

    ``environ`` adds or overrides ``GANTRY_*`` settings (``GANTRY_REDIS_URL``, say)."""
    port = free_port()
    env = {
        **os.environ,
        "GANTRY_HOST": "127.0.0.1",
        "GANTRY_PORT": str(port),
        "GANTRY_VAR_DIR": str(var_dir),
        "GANTRY_DATABASE_URL": database_url,
        "GANTRY_BOOTSTRAP_TOKEN": token,
        "GANTRY_ARGON2_PROFILE": os.environ.get("GANTRY_ARGON2_PROFILE", "fast"),
        **(environ or {}),
    }
    log_path = var_dir / "server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(GANTRY), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        server = LiveServer(base_url=f"http://127.0.0.1:{port}", token=token, log=log_path)
        try:
            _wait_until_healthy(server, process)
            yield server
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait_until_healthy(server: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if requests.get(f"{server.api_url}/health", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{server.log.read_text()}")
        time.sleep(0.2)
