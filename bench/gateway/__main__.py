"""``make bench-gateway`` / ``python -m bench.gateway``: Gantry's AI gateway against calling the
upstream directly and against LiteLLM's proxy, side by side in one run (about 4 to 5 minutes).

Three targets on the same 2 cores, all on the same fast fake upstream (``bench.gateway.
upstream``): (a) the upstream called directly, the floor; (b) Gantry's gateway (``gantry
serve``, 2 workers, default threads); (c) LiteLLM's proxy (2 workers). The same OpenAI chat
completions body goes to each. In rounds, the targets' order rotated each round:

* non-streamed latency: requests one after another on one keep-alive connection;
* streamed time to first byte: the same with ``"stream": true``, timed to the first ``data:``;
* requests per second at 8 and at 32 connections, once the load is steady (``bench.gateway.
  loadgen``: ``wrk`` when installed, else Python clients), and the servers' CPU time per
  request over those runs (on a shared machine it moves less than requests per second do).

Latency added is a percentile minus the floor's; requests per second are medians over rounds.
Writes ``var/bench/gateway.json`` and prints a Markdown table. The targets (Gantry adds less
than half the latency LiteLLM adds, and serves more requests per second) are reported as met
or not, never asserted. When LiteLLM cannot be installed or started, the run goes on without
it and says why.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench.gateway import litellm_proxy, loadgen, report
from bench.gateway.client import Samples, http_request, run_sequential
from bench.gateway.servers import (
    MODEL,
    ROOT,
    UPSTREAM_KEY,
    Process,
    setup_gantry,
    start_gantry,
    start_upstream,
)

OUT = ROOT / "var" / "bench" / "gateway.json"
BODY = {
    "model": MODEL,
    "messages": [{"role": "user", "content": "Hello"}],
    "max_tokens": 16,
}
CONNECTIONS = (8, 32)


class Target:
    """One way of calling the upstream: where, with which credential, served by which process."""

    def __init__(self, name: str, process: Process, port: int, path: str, key: str) -> None:
        self.name = name
        self.process = process
        self.port = port
        self.path = path
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    def raw(self, stream: bool) -> bytes:
        body = {**BODY, "stream": True} if stream else BODY
        return http_request(self.path, json.dumps(body).encode(), self.headers)

    def load(self, connections: int, seconds: int) -> loadgen.Load:
        """Non-streamed calls at ``connections`` for ``seconds``."""
        body = json.dumps(BODY).encode()
        return loadgen.run(
            self.port, self.path, body, self.headers, connections=connections, seconds=seconds
        )

    def check(self) -> None:
        """One plain and one streamed call, answered in full, before anything is timed."""
        for stream in (False, True):
            samples = run_sequential(self.port, self.raw(stream), duration_s=30, max_requests=1)
            if samples.errors or not samples.total_ms or (stream and not samples.first_ms):
                raise RuntimeError(f"{self.name} did not answer a {stream=} call: {samples}")


@dataclass(frozen=True)
class Plan:
    """How long each part runs. A load run must be long beside a slow target's latency, or a
    time-boxed run counts too few completions (at 32 connections and 1 s per request, a 1 s
    run completes almost none)."""

    rounds: int
    sequential_s: float  # per target, per round, plain and streamed each
    min_sequential: int  # requests per sequential run, however slow the target
    rps_s: int  # per target, per round, per connection count (wrk counts whole seconds)
    warmup_s: float

    def describe(self) -> str:
        return (
            f"{self.rounds} rounds; per target and round: {self.sequential_s:g} s of sequential "
            f"plain and of streamed calls (at least {self.min_sequential} each), "
            f"{self.rps_s} s of load at each of {' and '.join(map(str, CONNECTIONS))} "
            f"connections ({loadgen.tool_name()})"
        )


FULL = Plan(rounds=3, sequential_s=1.5, min_sequential=30, rps_s=6, warmup_s=1.0)
QUICK = Plan(rounds=2, sequential_s=1.0, min_sequential=10, rps_s=4, warmup_s=1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rounds", type=int, default=FULL.rounds, help="rounds (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 short rounds, to try it out")
    parser.add_argument("--no-litellm", action="store_true", help="leave LiteLLM out")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, flush=True)

    plan = QUICK if args.quick else replace(FULL, rounds=max(1, args.rounds))
    started = time.monotonic()
    load_at_start = os.getloadavg()

    litellm_missing: str | None = None
    executable = None
    if args.no_litellm:
        litellm_missing = "left out (--no-litellm)"
    else:
        executable, litellm_missing = litellm_proxy.ensure_installed(log)
    install_s = time.monotonic() - started

    work = Path(tempfile.mkdtemp(prefix="gantry-bench-gateway-"))
    processes: list[Process] = []
    targets: dict[str, Target] = {}
    try:
        upstream, upstream_port = start_upstream(work)
        processes.append(upstream)
        targets["floor"] = Target(
            "floor", upstream, upstream_port, "/v1/chat/completions", UPSTREAM_KEY
        )
        litellm = None
        if executable is not None:  # first: it takes longest to start
            litellm, litellm_port = litellm_proxy.start(executable, work, upstream_port)
            processes.append(litellm)
        gantry = start_gantry(work)
        processes.append(gantry.process)
        setup_gantry(gantry, upstream_port)
        targets["gantry"] = Target(
            "gantry", gantry.process, gantry.port, "/api/v1/llm/v1/chat/completions", gantry.api_key
        )
        for target in targets.values():
            target.check()
        if litellm is not None:
            try:
                litellm_proxy.wait_ready(litellm, litellm_port)
                proxy = Target(
                    "litellm",
                    litellm,
                    litellm_port,
                    "/v1/chat/completions",
                    litellm_proxy.MASTER_KEY,
                )
                proxy.check()
                targets["litellm"] = proxy
            except RuntimeError as exc:
                litellm_missing = f"its proxy did not serve: {str(exc).splitlines()[0]}"
                litellm.stop()
        log(f"servers up in {time.monotonic() - started - install_s:.0f} s: {', '.join(targets)}")
        if litellm_missing:
            log(f"LiteLLM is missing from this run: {litellm_missing}")

        result = measure(targets, plan, log)
        result["rss_mib"] = {n: round(t.process.rss_mib(), 1) for n, t in targets.items()}
    except BaseException:
        log(f"the servers' logs are kept in {work}")
        raise
    finally:
        for process in reversed(processes):
            process.stop()
    shutil.rmtree(work, ignore_errors=True)

    result["litellm"] = {
        "version": litellm_proxy.version_of(executable) if executable else None,
        "missing": litellm_missing,
    }
    result["targets"] = report.targets(result)
    result["meta"] = {
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "plan": plan.describe(),
        "gantry": "gantry serve --workers 2 (default threads), SQLite, access log on",
        "litellm": "litellm --num_workers 2 (uvicorn, uvloop), no database, LITELLM_LOG=ERROR",
        "seconds": round(time.monotonic() - started, 1),
        "install_seconds": round(install_s, 1),
        "loadavg_1_5_15_min": {
            "start": [round(x, 2) for x in load_at_start],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
    }

    log("")
    log(report.table(result))
    log("")
    if litellm_missing:
        log(f"LiteLLM: not measured, {litellm_missing}")
    for row in result["targets"]:
        log(f"[{'met' if row['met'] else 'NOT met'}] {row['target']}: {row['figure']}")
    loadavg = result["meta"]["loadavg_1_5_15_min"]
    log(f"load average (1, 5, 15 min): {loadavg['start']} at start, {loadavg['end']} at end")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    shown = args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out
    log(f"wrote {shown} in {time.monotonic() - started:.0f} s")
    return 0


def measure(targets: dict[str, Target], plan: Plan, log: Any) -> dict[str, Any]:
    """Every part for every target, round-robin (see the module doc)."""
    names = list(targets)
    plain = {n: Samples() for n in names}
    stream = {n: Samples() for n in names}
    rps: dict[str, dict[str, list[float]]] = {str(c): {n: [] for n in names} for c in CONNECTIONS}
    completed: dict[str, dict[str, list[float]]] = {
        str(c): {n: [] for n in names} for c in CONNECTIONS
    }
    cpu_s = dict.fromkeys(names, 0.0)
    served = dict.fromkeys(names, 0)
    errors = dict.fromkeys(names, 0)

    log("warming up")
    for target in targets.values():
        for streamed in (False, True):
            run_sequential(
                target.port, target.raw(streamed), duration_s=plan.warmup_s, max_requests=5000
            )
        for connections in CONNECTIONS:
            target.load(connections, 2)

    log(plan.describe())
    for r in range(plan.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            target = targets[name]
            for streamed, into in ((False, plain), (True, stream)):
                into[name].extend(
                    run_sequential(
                        target.port,
                        target.raw(streamed),
                        duration_s=plan.sequential_s,
                        min_requests=plan.min_sequential,
                        max_requests=20_000,
                    )
                )
            for connections in CONNECTIONS:
                before = target.process.cpu_s()
                result = target.load(connections, plan.rps_s)
                cpu_s[name] += target.process.cpu_s() - before
                served[name] += result.requests
                errors[name] += result.errors
                rps[str(connections)][name].append(result.rps)
                completed[str(connections)][name].append(result.completed_rps)
        log(f"  round {r + 1}/{plan.rounds}")

    for name in names:
        errors[name] += plain[name].errors + stream[name].errors
    plain_ms = report.latency(plain, first=False)
    stream_ms = report.latency(stream, first=True)
    rps_medians: dict[str, dict[str, float]] = {}
    rps_ratios: dict[str, dict[str, float]] = {}
    for count, rows in rps.items():
        rps_medians[count], rps_ratios[count] = report.rps_summary(rows)
    return {
        "plain": {"latency_ms": plain_ms, "added_ms": report.added(plain_ms)},
        "stream": {"latency_ms": stream_ms, "added_ms": report.added(stream_ms)},
        "stream_total_ms": report.latency(stream, first=False),
        "rps": rps_medians,
        "rps_ratio": rps_ratios,
        "rps_completed": {c: report.rps_summary(rows)[0] for c, rows in completed.items()},
        "cpu_ms_per_request": {
            n: round(cpu_s[n] * 1000 / served[n], 3) if served[n] else float("nan") for n in names
        },
        "errors": errors,
        "load_tool": loadgen.tool_name(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
