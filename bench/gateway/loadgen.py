"""Requests per second at a fixed number of connections: ``wrk`` with a Lua script for the POST
body when it is installed, else a Python client with one keep-alive connection per thread.

The figure counts only the responses that arrive once the load is steady: the usual one,
completed requests over the run's length, is biased low when a request takes a sizeable part
of the run (at 32 connections and 2 s per request, nothing completes in the first 2 s). The
run's first ``RAMP_S`` seconds, and with ``wrk`` the partial seconds at its ends, are left
out (``wrk`` timestamps responses to the second, in its Lua ``response`` hook). Both figures
are kept. Only 127.0.0.1 is addressed; every run stops by itself.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

from bench.gateway.client import HOST, Connection, http_request

WRK_TIMEOUT_S = 30  # a slow target's requests are slow, not failed
RAMP_S = 2  # seconds at the start of each run left out of ``rps``: connections open, queues fill


@dataclass(frozen=True)
class Load:
    rps: float  # responses per second once the load is steady
    completed_rps: float  # every completed request over the run's length
    requests: int
    errors: int
    tool: str


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def tool_name() -> str:
    return "wrk -t1" if wrk_available() else "Python keep-alive clients"


def _lua(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# Responses counted per wall-clock second in each thread, printed at the end.
_COUNTING = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) per_second = {} end
function response(status, headers, body)
  if status == 200 then
    local now = os.time()
    per_second[now] = (per_second[now] or 0) + 1
  end
end
function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for second, count in pairs(thread:get("per_second")) do
      io.write(string.format("second %d %d\\n", second, count))
    end
  end
end
"""


def _script(body: bytes, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua(body.decode())}"]
    lines += [f"wrk.headers[{_lua(k)}] = {_lua(v)}" for k, v in headers.items()]
    return "\n".join(lines) + "\n" + _COUNTING


def steady_rps(per_second: dict[int, int], begun: float, ended: float) -> float | None:
    """Responses per second over the whole wall-clock seconds of the run after its ramp (None
    when the run was too short to have any)."""
    kept = [s for s in range(math.ceil(begun + RAMP_S), math.floor(ended))]
    return sum(per_second.get(s, 0) for s in kept) / len(kept) if kept else None


def _ms(value: str, unit: str) -> float:  # a wrk duration in milliseconds
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run_wrk(
    port: int, path: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: int
) -> Load:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(_script(body, headers))
        script = handle.name
    try:
        begun = time.time()
        out = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{seconds}s",
                "--timeout",
                f"{WRK_TIMEOUT_S}s",
                "-s",
                script,
                f"http://{HOST}:{port}{path}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + WRK_TIMEOUT_S + 30,
            check=True,
        ).stdout
        ended = time.time()
    finally:
        os.unlink(script)
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    per_second: dict[int, int] = {}
    for second, count in re.findall(r"^second (\d+) (\d+)$", out, re.MULTILINE):
        per_second[int(second)] = per_second.get(int(second), 0) + int(count)
    requests = int(done.group(1))
    elapsed_s = _ms(done.group(2), done.group(3)) / 1000
    errors = 0
    if non_2xx := re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out):
        errors += int(non_2xx.group(1))
    if socket_errors := re.search(r"Socket errors:.*", out):
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(0)))
    completed = requests / elapsed_s if elapsed_s else 0.0
    steady = steady_rps(per_second, begun, ended)
    return Load(
        rps=completed if steady is None else steady,
        completed_rps=completed,
        requests=requests,
        errors=errors,
        tool="wrk",
    )


def run_python(
    port: int, path: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: int
) -> Load:
    request = http_request(path, body, headers)
    finished: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def client() -> None:
        connection = Connection(port)
        mine: list[float] = []
        bad = 0
        try:
            while time.perf_counter() < stop_at:
                try:
                    status, _, _ = connection.call(request)
                except Exception:
                    bad += 1
                    connection.close()
                    continue
                if status == 200:
                    mine.append(time.perf_counter())
                else:
                    bad += 1
        finally:
            connection.close()
        with lock:
            finished.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client) for _ in range(connections)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + WRK_TIMEOUT_S)
    elapsed = time.perf_counter() - started
    window_s = seconds - RAMP_S
    steady = [t for t in finished if started + RAMP_S <= t < stop_at]
    return Load(
        rps=len(steady) / window_s if window_s > 0 else len(finished) / elapsed,
        completed_rps=len(finished) / elapsed,
        requests=len(finished),
        errors=errors[0],
        tool="python",
    )


def run(
    port: int, path: str, body: bytes, headers: dict[str, str], *, connections: int, seconds: int
) -> Load:
    runner = run_wrk if wrk_available() else run_python
    return runner(port, path, body, headers, connections=connections, seconds=seconds)
