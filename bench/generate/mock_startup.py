"""The mock of a large document: generation time, then start-up time and memory of `gantry mock`.

The document is synthetic (`specs.build`): 300 operations and 1,500 component schemas, the size
of a large public API. Measured, each in a fresh subprocess:

- **generate**: a cold `gantry generate` (empty cache);
- **mock start**: `gantry mock` from its launch to the first answered request (an operation
  whose response references most of the schemas), the generator's cache warm as it is after the
  first start;
- **mock RSS**: the mock process's peak resident memory (`VmHWM`) after that first answer.

Targets: start < 10 s, RSS < 500 MiB.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.generate.specs import build, to_yaml

OPERATIONS = 300
SCHEMAS = 1500
TARGET_START_S = 10.0
TARGET_RSS_MIB = 500.0
_DEADLINE_S = 300.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _first_answer(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until `url` answers (any status), or fail when the mock died or took too long."""
    started = time.monotonic()
    while time.monotonic() - started < _DEADLINE_S:
        if process.poll() is not None:
            raise RuntimeError(f"the mock exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # an answer all the same
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the mock did not answer within {_DEADLINE_S:.0f} s")


def measure(repeat: int, folder: Path) -> dict[str, Any]:
    """Generation time, mock start-up time and peak RSS (medians of `repeat` runs)."""
    spec = folder / f"mock_{OPERATIONS}_{SCHEMAS}.yaml"
    spec.write_text(to_yaml(build(OPERATIONS, SCHEMAS)), encoding="utf-8")
    cache = folder / "mock_cache"
    env = {**os.environ, "PYTHONHASHSEED": "0", "GANTRY_CACHE_DIR": str(cache)}
    runs: dict[str, list[float]] = {"generate": [], "start": [], "rss_mib": []}
    for i in range(repeat):
        cold = {**env, "GANTRY_CACHE_DIR": str(folder / f"mock_cold_{i}")}
        command = [sys.executable, "-m", "gantry.cli", "generate", "--spec", str(spec)]
        started = time.perf_counter()
        subprocess.run([*command, "--out", str(folder / f"mock_out_{i}")], env=cold, check=True)
        runs["generate"].append(time.perf_counter() - started)
    # The first start fills the cache with the mock's package; the measured ones find it there.
    for i in range(repeat + 1):
        port = _free_port()
        command = [sys.executable, "-m", "gantry.cli", "mock", str(spec), "--port", str(port)]
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, stderr=subprocess.DEVNULL)
        try:
            _first_answer(f"http://127.0.0.1:{port}/v1/resource0000s/x", process)
            elapsed = time.perf_counter() - started
            rss = _peak_rss_mib(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        if i:
            runs["start"].append(elapsed)
            runs["rss_mib"].append(rss)
        print(f"  mock run {i}: start {elapsed:.2f} s, peak RSS {rss:.0f} MiB", file=sys.stderr)
    return {
        "operations": OPERATIONS,
        "schemas": SCHEMAS,
        "runs": runs,
        "median": {name: statistics.median(values) for name, values in runs.items()},
    }


def table(result: dict[str, Any]) -> str:
    """The Markdown table the README quotes."""
    m = result["median"]
    return "\n".join(
        [
            "| operations | schemas | generate (cold) | mock start to first answer | mock peak RSS |",
            "|---:|---:|---:|---:|---:|",
            f"| {result['operations']:,} | {result['schemas']:,} | {m['generate']:.2f} s "
            f"| {m['start']:.2f} s | {m['rss_mib']:.0f} MiB |",
        ]
    )


def verdicts(result: dict[str, Any]) -> list[str]:
    """One line per target."""
    m = result["median"]
    return [
        f"mock start < {TARGET_START_S:.0f} s: "
        f"{'met' if m['start'] < TARGET_START_S else 'NOT met'} ({m['start']:.2f} s)",
        f"mock peak RSS < {TARGET_RSS_MIB:.0f} MiB: "
        f"{'met' if m['rss_mib'] < TARGET_RSS_MIB else 'NOT met'} ({m['rss_mib']:.0f} MiB)",
    ]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="gantry-bench-mock-") as tmp:
        outcome = measure(1, Path(tmp))
    print(table(outcome))
    print("\n".join(verdicts(outcome)))
