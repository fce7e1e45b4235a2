"""Over HTTP on 127.0.0.1: gunicorn (2 workers per variant) and a bounded load generator.

Servers: the WSGI variants run on gunicorn's ``gthread`` worker (keep-alive, one thread), the
Connexion variant on the Uvicorn worker for gunicorn, as Connexion's documentation runs it.
Load: ``wrk`` (one thread, a fixed number of connections, a fixed duration); without ``wrk``, a
bounded Python client (keep-alive connections in threads, same duration). Every request loop
stops by itself; only 127.0.0.1 is ever addressed.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from bench.requests import BenchRequest

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    """A gunicorn master serving one app spec; started and stopped by this process only."""

    app: str  # gunicorn's "module:factory(...)"
    worker_class: str = "gthread"
    workers: int = 2
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, ready: BenchRequest, expected: int, timeout: float = 60.0) -> None:
        handle, name = tempfile.mkstemp(prefix="gantry-bench-", suffix=".log")
        os.close(handle)
        self.log = Path(name)
        args = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{HOST}:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            self.worker_class,
            "--log-level",
            "warning",
            "--keep-alive",
            "30",
            "--chdir",
            str(ROOT),
        ]
        if self.worker_class == "gthread":
            args += ["--threads", "1"]
        args.append(self.app)
        env = {**os.environ, "PYTHONPATH": str(ROOT), **self.env}
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app} exited: {self.log.read_text()[-2000:]}")
            try:
                status, _ = send_once(self.port, ready)
            except OSError:
                time.sleep(0.2)
                continue
            if status == expected and len(self.worker_pids()) == self.workers:
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.app} did not become ready")

    def worker_pids(self) -> list[int]:
        import psutil

        if self.process is None:
            return []
        try:
            return [child.pid for child in psutil.Process(self.process.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def worker_rss_mib(self) -> float:
        """The largest worker's resident set size, MiB."""
        import psutil

        sizes = []
        for pid in self.worker_pids():
            try:
                sizes.append(psutil.Process(pid).memory_info().rss / (1 << 20))
            except psutil.NoSuchProcess:
                continue
        return max(sizes) if sizes else float("nan")

    def worker_cpu_s(self) -> float:
        """CPU time (user + system) the workers have used so far, s: unlike requests per
        second, it does not count the time other jobs on a shared machine keep them waiting."""
        import psutil

        total = 0.0
        for pid in self.worker_pids():
            try:
                times = psutil.Process(pid).cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # gunicorn's graceful stop, workers included
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.log is not None:
            self.log.unlink(missing_ok=True)


def send_once(port: int, req: BenchRequest, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(req.method, req.target, body=req.body or None, headers=dict(req.headers))
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ── load generation ─────────────────────────────────────────────────────────────────────────


@dataclass
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    requests: int  # completed in the run


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


_LUA = """
wrk.method = {method}
wrk.body = {body}
{headers}
"""


def _lua_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def run_wrk(
    port: int, req: BenchRequest, *, duration: float, connections: int, expected: int
) -> LoadResult:
    headers = "\n".join(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in req.headers)
    script = _LUA.format(
        method=_lua_string(req.method), body=_lua_string(req.body.decode()), headers=headers
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        script_path = handle.name
    try:
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(duration))}s",  # wrk takes whole seconds
                "--latency",
                "--timeout",
                "5s",
                "-s",
                script_path,
                f"http://{HOST}:{port}{req.target}",
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script_path)
    return _parse_wrk(out, expected)


def _parse_wrk(out: str, expected: int) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors:.*", out)
    errors = 0
    if non_2xx and expected < 400:
        errors += int(non_2xx.group(1))
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))

    def latency(percent: str) -> float:
        match = re.search(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if not match:
            return float("nan")
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    completed = re.search(r"(\d+) requests in", out)
    requests = int(completed.group(1)) if completed else 0
    return LoadResult(rps, latency("50"), latency("99"), errors, "wrk", requests)


def run_python_load(
    port: int, req: BenchRequest, *, duration: float, connections: int, expected: int
) -> LoadResult:
    """The fallback: ``connections`` keep-alive clients in threads for ``duration`` seconds."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + duration
    headers = dict(req.headers)

    def client() -> None:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        mine: list[float] = []
        bad = 0
        try:
            while time.perf_counter() < stop_at:
                start = time.perf_counter()
                try:
                    conn.request(req.method, req.target, body=req.body or None, headers=headers)
                    response = conn.getresponse()
                    response.read()
                except (OSError, http.client.HTTPException):
                    bad += 1
                    conn.close()
                    conn = http.client.HTTPConnection(HOST, port, timeout=5)
                    continue
                mine.append(time.perf_counter() - start)
                if response.status != expected:
                    bad += 1
        finally:
            conn.close()
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + 30)
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0.0
        )

    return LoadResult(
        len(latencies) / duration, pct(0.5), pct(0.99), errors[0], "python", len(latencies)
    )


def load(
    port: int, req: BenchRequest, *, duration: float, connections: int, expected: int
) -> LoadResult:
    runner: Callable[..., LoadResult] = run_wrk if wrk_available() else run_python_load
    return runner(port, req, duration=duration, connections=connections, expected=expected)


def describe_tool(connections: int, duration: float) -> str:
    tool = "wrk -t1" if wrk_available() else "python keep-alive client"
    return f"{tool}, {connections} connections, {duration:g} s per run"


__all__ = ["LoadResult", "Server", "describe_tool", "load", "send_once", "wrk_available"]
