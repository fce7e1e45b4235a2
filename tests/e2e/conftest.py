"""A real server for end-to-end tests: `gantry serve` (gunicorn) on a free 127.0.0.1 port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

BOOTSTRAP_TOKEN = "pat_" + "E2eServerToken" * 2 + "abcdefghijkl"
GANTRY = Path(sys.executable).with_name("gantry")


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    token: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Start the server the way an operator does and wait (at most 60 s) until it answers."""
    port = _free_port()
    var_dir = tmp_path_factory.mktemp("live")
    env = {
        **os.environ,
        "GANTRY_HOST": "127.0.0.1",
        "GANTRY_PORT": str(port),
        "GANTRY_VAR_DIR": str(var_dir),
        "GANTRY_DATABASE_URL": "",
        "GANTRY_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN,
    }
    log = (var_dir / "server.log").open("w")
    process = subprocess.Popen([str(GANTRY), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if requests.get(f"{base_url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((var_dir / "server.log").read_text())
            time.sleep(0.2)
        yield LiveServer(base_url=base_url, token=BOOTSTRAP_TOKEN)
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
