"""``make bench`` / ``python -m bench``: the whole benchmark in one run, about 7 to 10 minutes.

1. In-process µs per request, four variants by four requests, round-robin (``bench.inprocess``).
2. Start-up: import + app factory in a fresh interpreter, per variant and for the full API.
3. Start-up and worker memory by document size: today's spec and a synthetic document of 500
   operations and 1,000 schemas through the real runtime, per operation (``bench.growth``).
4. Over HTTP: gunicorn, 2 workers per variant, all four up at once and loaded in turn
   (round-robin), then each variant's worker RSS.
5. The real API on SQLite (``bench.real_api``).
6. The run queue on PostgreSQL (``bench.queue``): runs claimed and completed per second with
   1, 2 and 4 executors, and a claim's cost against a bare ``UPDATE … RETURNING``.
7. The SDK prompt fetch over HTTP, 200 and 304, against a static file served by the same stack
   (``bench.sdk_fetch``).

Writes ``var/bench/latest.json``:
``{"inprocess_us": {VARIANT: {REQUEST: median}}, "http_rps": {...}, "http_rps_ratio": {...},
"http_cpu_us": {...}, "startup_s": {VARIANT: s}, "growth": {ROW: {...}, "growth": {...}},
"rss_mib": {VARIANT: MiB}, "real_api": {...}, "run_queue": {...}, "sdk_fetch": {...},
"meta": {...}}``. ``http_rps_ratio`` is the
median over rounds of each variant's requests per second over the floor's in the same round
(what the HTTP target is checked on).
``http_cpu_us`` is the CPU time the gunicorn workers spent per request over HTTP: on a shared
machine, other jobs lower requests per second but hardly CPU time per request.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from math import nan
from pathlib import Path
from typing import Any

from bench.contract.apps import VARIANTS
from bench.growth import run as growth
from bench.inprocess import build_calls, measure, quiet_logs
from bench.over_http import Server, describe_tool, load
from bench.requests import EXPECTED_STATUS, REQUESTS, bench_requests

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "var" / "bench" / "latest.json"
PYCACHE = ROOT / "var" / "bench" / "pycache"
WORKER_CLASS = {"connexion": "uvicorn_worker.UvicornWorker"}

_STARTUP = """
import time
from math import nan
start = time.perf_counter()
{body}
print(time.perf_counter() - start)
"""
_VARIANT_STARTUP = "from bench.contract.apps import FACTORIES\napp = FACTORIES[{variant!r}]()"
# Two figures for the full API: the imports, then create_app alone.
_FULL_STARTUP = """
import pathlib, time
start = time.perf_counter()
from server.config import Config
from server.app import create_app
imported = time.perf_counter()
app = create_app(Config(var_dir=pathlib.Path({var!r}), secret_key="x"))
done = time.perf_counter()
print(imported - start, done - imported)
"""


def _python(code: str) -> list[float]:
    """Run ``code`` in a fresh interpreter (bytecode caching on, as on a deployed server; the
    caches go under var/, not into the source tree)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return [float(x) for x in out.stdout.strip().splitlines()[-1].split()]


def measure_startup(repeats: int, log: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Per variant: import + app factory (s). Full API: imports and create_app (s)."""
    samples: dict[str, list[float]] = {v: [] for v in VARIANTS}
    imports: list[float] = []
    creates: list[float] = []
    with tempfile.TemporaryDirectory(prefix="gantry-bench-start-") as var:
        # Warm-up: migrate the database once and leave bytecode caches behind.
        _python(_FULL_STARTUP.format(var=var))
        for variant in VARIANTS:
            _python(_STARTUP.format(body=_VARIANT_STARTUP.format(variant=variant)))
        for r in range(repeats):
            order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
            for variant in order:
                body = _VARIANT_STARTUP.format(variant=variant)
                samples[variant].append(_python(_STARTUP.format(body=body))[0])
            imported, created = _python(_FULL_STARTUP.format(var=var))
            imports.append(imported)
            creates.append(created)
    log(f"start-up: {repeats} fresh interpreters per variant")
    full = {
        "import_s": round(statistics.median(imports), 3),
        "create_app_s": round(statistics.median(creates), 3),
    }
    return {v: round(statistics.median(s), 3) for v, s in samples.items()}, full


@dataclass
class HttpResult:
    """Over HTTP, per (variant, request): medians over rounds, and worker RSS after the load."""

    rps: dict[str, dict[str, float]]
    # Median over rounds of the variant's rps divided by the floor's in the same round: the
    # two runs are seconds apart, so a burst of other load on a shared machine tends to hit
    # both, where it would move one median and not the other.
    rps_ratio: dict[str, dict[str, float]]
    cpu_us: dict[str, dict[str, float]]  # the workers' CPU time per request
    rss_mib: dict[str, float]
    errors: dict[str, int]


def measure_http(*, rounds: int, duration: float, connections: int, log: Any) -> HttpResult:
    requests = bench_requests()
    servers = {
        v: Server(
            app=f"bench.contract.apps:serve({v!r})",
            worker_class=WORKER_CLASS.get(v, "gthread"),
        )
        for v in VARIANTS
    }
    rps: dict[str, dict[str, list[float]]] = {v: {r: [] for r in REQUESTS} for v in VARIANTS}
    cpu: dict[str, dict[str, list[float]]] = {v: {r: [] for r in REQUESTS} for v in VARIANTS}
    errors: dict[str, int] = dict.fromkeys(VARIANTS, 0)
    try:
        for server in servers.values():
            server.start(requests["get"], 200)
        for server in servers.values():  # warm every path up
            for name in REQUESTS:
                load(server.port, requests[name], duration=1, connections=connections, expected=0)
        for r in range(rounds):
            for name in REQUESTS:
                order = VARIANTS[r % len(VARIANTS) :] + VARIANTS[: r % len(VARIANTS)]
                for variant in order:
                    cpu_before = servers[variant].worker_cpu_s()
                    result = load(
                        servers[variant].port,
                        requests[name],
                        duration=duration,
                        connections=connections,
                        expected=EXPECTED_STATUS[name],
                    )
                    cpu_used = servers[variant].worker_cpu_s() - cpu_before
                    rps[variant][name].append(result.rps)
                    cpu[variant][name].append(
                        cpu_used / result.requests * 1e6 if result.requests else float("nan")
                    )
                    errors[variant] += result.errors
            if (r + 1) % 5 == 0 or r + 1 == rounds:
                log(f"  over HTTP: round {r + 1}/{rounds}")
        rss = {v: round(s.worker_rss_mib(), 1) for v, s in servers.items()}
    finally:
        for server in servers.values():
            server.stop()

    def medians(table: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
        return {
            v: {r: round(statistics.median(x), 1) for r, x in row.items()}
            for v, row in table.items()
        }

    paired = {
        v: {
            r: round(
                statistics.median(
                    a / b if b else nan for a, b in zip(x, rps["floor"][r], strict=True)
                ),
                3,
            )
            for r, x in row.items()
        }
        for v, row in rps.items()
    }
    return HttpResult(medians(rps), paired, medians(cpu), rss, errors)


def ratio_table(
    title: str,
    table: dict[str, dict[str, float]],
    unit: str,
    better: str,
    ratios: dict[str, dict[str, float]] | None = None,
) -> str:
    """Medians and each variant's ratio to the floor (``ratios``, else median over median)."""
    lines = [f"{title} ({unit}; ratio to floor, {better} is better)"]
    header = f"  {'':13s}" + "".join(f"{name:>20s}" for name in REQUESTS)
    lines.append(header)
    floor = table["floor"]
    for variant, row in table.items():
        cells = "".join(
            f"{row[name]:>11.1f} "
            f"({ratios[variant][name] if ratios else row[name] / floor[name]:5.2f}x)"
            for name in REQUESTS
        )
        lines.append(f"  {variant:13s}{cells}")
    return "\n".join(lines)


def targets(result: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Each target of issue 5 with whether this run met it."""
    inproc, rps_ratio = result["inprocess_us"], result.get("http_rps_ratio")
    rows = []
    for name in REQUESTS:
        g, f = inproc["gantry"][name], inproc["floor"][name]
        rows.append((f"in-process {name} <= 1.25x floor", g / f <= 1.25, f"{g / f:.2f}x"))
    for name in REQUESTS:
        g, c = inproc["gantry"][name], inproc["connexion"][name]
        rows.append((f"in-process {name} >= 5x faster than connexion", c / g >= 5, f"{c / g:.1f}x"))
    for name in REQUESTS:
        g, o = inproc["gantry"][name], inproc["openapi_core"][name]
        rows.append(
            (f"in-process {name} >= 10x faster than openapi-core", o / g >= 10, f"{o / g:.1f}x")
        )
    if rps_ratio:
        for name in REQUESTS:
            ratio = rps_ratio["gantry"][name]
            rows.append((f"HTTP {name} >= 0.8x floor rps", ratio >= 0.8, f"{ratio:.2f}x"))
    full = result.get("real_api", {}).get("startup")
    if full is not None:
        create, total = full["create_app_s"], full["import_s"] + full["create_app_s"]
        rows.append(("create_app (full spec) < 1 s", create < 1.0, f"{create:.3f} s"))
        rows.append(("import + create_app (full spec) < 1 s", total < 1.0, f"{total:.3f} s"))
    rss = result.get("rss_mib", {}).get("gantry")
    if rss is not None:
        rows.append(("gantry worker RSS < 120 MiB (bench contract)", rss < 120, f"{rss} MiB"))
    full_rss = result.get("real_api", {}).get("worker_rss_mib")
    if full_rss is not None:
        rows.append(("gantry worker RSS < 120 MiB (full API)", full_rss < 120, f"{full_rss} MiB"))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, shorter loads")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP parts")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    quick = args.quick
    started = time.monotonic()
    load_at_start = os.getloadavg()  # the machine may be shared: say how busy it was
    quiet_logs()
    result: dict[str, Any] = {}

    log("1/5 in-process")
    calls, runner = build_calls()
    try:
        result["inprocess_us"] = {
            v: {r: round(x, 1) for r, x in row.items()}
            for v, row in measure(calls, rounds=7 if quick else 21, log=log).items()
        }
    finally:
        runner.close()
    log(ratio_table("in-process, median µs per request", result["inprocess_us"], "µs", "lower"))

    log("2/5 start-up")
    startup, full_startup = measure_startup(1 if quick else 3, log)
    result["startup_s"] = startup

    log("3/5 start-up and worker memory by document size")
    result["growth"] = growth.measure(1 if quick else 3, log)
    log(growth.table(result["growth"]))

    # Many short runs, round-robin: on a shared machine their median is steadier than a few long.
    connections, duration, rounds = 8, 1.0, (2 if quick else 14)
    result["http_rps"], result["http_rps_ratio"], result["http_cpu_us"] = {}, {}, {}
    result["rss_mib"] = {}
    if not args.no_http:
        log(f"4/5 over HTTP ({describe_tool(connections, duration)}, {rounds} rounds)")
        http = measure_http(rounds=rounds, duration=duration, connections=connections, log=log)
        result["http_rps"], result["http_rps_ratio"] = http.rps, http.rps_ratio
        result["http_cpu_us"], result["rss_mib"] = http.cpu_us, http.rss_mib
        result["http_errors"] = http.errors
        log(
            ratio_table(
                "over HTTP, median requests per second (ratio: median of same-round ratios)",
                http.rps,
                "rps",
                "higher",
                ratios=http.rps_ratio,
            )
        )
        log(
            ratio_table(
                "over HTTP, median worker CPU µs per request", http.cpu_us, "CPU µs", "lower"
            )
        )

    real: dict[str, Any] = {"startup": full_startup}
    if not args.no_http:
        log("5/5 the real API")
        from bench import real_api

        real.update(real_api.run(duration=3.0, connections=connections, rounds=3, log=log))
    result["real_api"] = real

    log("6. the run queue on PostgreSQL")
    from bench import queue as queue_bench

    result["run_queue"] = queue_bench.run(log, quick=quick)

    if not args.no_http:
        log("7. the SDK prompt fetch over HTTP")
        from bench import sdk_fetch

        result["sdk_fetch"] = sdk_fetch.run(
            duration=3.0, connections=connections, rounds=2 if quick else 5, log=log
        )

    result["meta"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load": describe_tool(connections, duration),
        "inprocess_clock": "process CPU time (time.process_time), median of rounds",
        "quick": quick,
        "seconds": round(time.monotonic() - started, 1),
        "loadavg_1_5_15_min": {
            "start": [round(x, 2) for x in load_at_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
    }

    log("")
    loadavg = result["meta"]["loadavg_1_5_15_min"]
    log(f"load average (1, 5, 15 min): {loadavg['start']} at start, {loadavg['end']} at end")
    log(f"start-up, import + app factory in a fresh interpreter (s): {json.dumps(startup)}")
    log(
        f"full API start-up (s): imports {full_startup['import_s']}, "
        f"create_app {full_startup['create_app_s']}"
    )
    if result["rss_mib"]:
        log(f"worker RSS after load (MiB): {json.dumps(result['rss_mib'])}")
    if "operations" in real:
        log("real API on SQLite (1,000 members), over HTTP:")
        for name, row in real["operations"].items():
            log(
                f"  {name:15s} {row['rps']:8.1f} rps  p50 {row['p50_ms']:7.2f} ms  "
                f"p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}"
            )
        log("  where the time goes (profile, % of own time):")
        for name, shares in real["breakdown_pct"].items():
            log(f"  {name:15s} " + "  ".join(f"{k} {v:.1f}%" for k, v in shares.items()))
    if "sdk_fetch" in result:
        log(sdk_fetch.table(result["sdk_fetch"]))
    log("targets:")
    for label, met, figure in targets(result):
        log(f"  [{'met' if met else 'NOT met'}] {label}: {figure}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    log(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
