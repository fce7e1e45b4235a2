"""The three servers of the gateway bench, each a process tree this bench starts and stops.

* the upstream (``bench.gateway.upstream``): the floor, and what both gateways call;
* Gantry: ``gantry serve`` (2 workers, default threads, SQLite under a temporary directory,
  as ``make serve`` runs it), set up through its API as a workspace admin would: a workspace,
  an API key with the ``gateway`` scope, an ``openai_compatible`` provider pointing at the
  upstream, a backend and a route;
* LiteLLM's proxy (``bench.gateway.litellm_proxy``): 2 workers, a ``config.yaml`` whose model list
  points at the same upstream, a master key, no database, logging off as far as it goes.

Every address is 127.0.0.1; every process is ended by the handle that started it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
MODEL = "bench-model"
UPSTREAM_KEY = "sk-upstream-bench"
GANTRY_TOKEN = "pat_" + "GatewayBenchBootstrapToken0123456789abcd"[:40]
# A per-credential limit the bench never reaches (every call is still counted, in the shared
# store, as in production): 1,000,000 requests a minute, bursts of 10,000.
GANTRY_RPM, GANTRY_BURST = 1_000_000, 10_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Process:
    """One server process (and the workers it forks), its output in ``log``."""

    name: str
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = ROOT
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.args,
                cwd=self.cwd,
                env=self.env or None,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped whole, and only it
            )

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[psutil.Process]:
        if not self.running():
            return []
        assert self.process is not None
        try:
            root = psutil.Process(self.process.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def cpu_s(self) -> float:
        """CPU time (user + system) the whole tree has used so far, s."""
        total = 0.0
        for proc in self.tree():
            try:
                times = proc.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def rss_mib(self) -> float:
        """The resident set size of the whole tree, MiB."""
        total = 0
        for proc in self.tree():
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        return total / (1 << 20)

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def wait_until(ready: Any, process: Process, timeout_s: float, what: str) -> None:
    """Poll ``ready()`` until it is true; fail if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if not process.running():
            raise RuntimeError(f"{what} exited:\n{process.tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} was not ready in {timeout_s:g} s:\n{process.tail()}")
        time.sleep(0.2)


def responds(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=2):
            return True
    except (OSError, urllib.error.HTTPError):
        return False


# ── the upstream ────────────────────────────────────────────────────────────────────────────


def start_upstream(work: Path) -> tuple[Process, int]:
    port = free_port()
    process = Process(
        "upstream",
        [sys.executable, "-m", "bench.gateway.upstream", "--port", str(port)],
        work / "upstream.log",
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    process.start()

    def listening() -> bool:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return True
        except OSError:
            return False

    wait_until(listening, process, 30, "the upstream")
    return process, port


# ── Gantry ──────────────────────────────────────────────────────────────────────────────────


@dataclass
class GantryServer:
    process: Process
    port: int
    api_key: str = ""

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.port}/api/v1"

    def call(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            self.api + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {GANTRY_TOKEN}",
                "Content-Type": "application/json",
            },
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
            return answer


def start_gantry(work: Path) -> GantryServer:
    """``gantry serve`` in the background; ``setup_gantry`` once it answers."""
    port = free_port()
    var = work / "gantry-var"
    var.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GANTRY_HOST": HOST,
        "GANTRY_PORT": str(port),
        "GANTRY_VAR_DIR": str(var),
        "GANTRY_DATABASE_URL": "",
        "GANTRY_REDIS_URL": "",
        "GANTRY_BOOTSTRAP_TOKEN": GANTRY_TOKEN,
        "GANTRY_GATEWAY_RPM": str(GANTRY_RPM),
        "GANTRY_GATEWAY_BURST": str(GANTRY_BURST),
    }
    gantry = Path(sys.executable).with_name("gantry")
    process = Process("gantry", [str(gantry), "serve", "--workers", "2"], work / "gantry.log", env)
    process.start()
    return GantryServer(process, port)


def setup_gantry(server: GantryServer, upstream_port: int, timeout_s: float = 120) -> None:
    """Wait for both workers, then make the scene through the API."""

    def ready() -> bool:
        return responds(f"{server.api}/health") and len(server.process.tree()) >= 3

    wait_until(ready, server.process, timeout_s, "gantry serve")
    workspace = server.call("POST", "/workspaces", {"name": "Bench", "slug": "bench"})["id"]
    server.api_key = server.call(
        "POST",
        f"/workspaces/{workspace}/api-keys",
        {"name": "bench", "role": "operator", "scopes": ["gateway"]},
    )["key"]
    provider = server.call(
        "POST",
        f"/workspaces/{workspace}/providers",
        {
            "name": "bench-upstream",
            "type": "openai_compatible",
            "base_url": f"http://{HOST}:{upstream_port}/v1",
            "api_key": UPSTREAM_KEY,
        },
    )["id"]
    backend = server.call(
        "POST",
        f"/workspaces/{workspace}/gateway/backends",
        {"name": "bench", "provider_id": provider, "upstream_model": MODEL, "timeout_ms": 30000},
    )["id"]
    server.call(
        "POST",
        f"/workspaces/{workspace}/gateway/routes",
        {
            "name": "bench",
            "model_patterns": [MODEL],
            "backends": [{"backend_id": backend, "priority": 0}],
        },
    )
