"""In-process timing: µs per request for every variant and request, round-robin.

Each round times one batch of calls per (request, variant), the variants in a rotating order, so
drift (CPU frequency, caches) spreads over all variants instead of landing on one. The result per
(variant, request) is the median over rounds of the batch's mean; as ``timeit`` does, garbage
collection is off inside a batch and runs between batches. Time is the bench process's CPU
time (``time.process_time``: every thread, Connexion's thread pool included), so other jobs on a
shared machine slow the wall clock but not the figures.
"""

from __future__ import annotations

import gc
import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping
from typing import Any

from bench.contract.apps import FACTORIES, VARIANTS
from bench.requests import (
    EXPECTED_STATUS,
    REQUESTS,
    AsgiRunner,
    BenchRequest,
    Call,
    bench_requests,
    wsgi_caller,
)


def build_calls(
    variants: tuple[str, ...] = VARIANTS,
) -> tuple[dict[str, dict[str, Call]], AsgiRunner]:
    """One ready call per (variant, request); checks each answers as the contract says."""
    requests = bench_requests()
    runner = AsgiRunner()
    calls: dict[str, dict[str, Call]] = {}
    for variant in variants:
        app = FACTORIES[variant]()
        calls[variant] = {}
        for name, req in requests.items():
            call = runner.caller(app, req) if variant == "connexion" else wsgi_caller(app, req)
            check(variant, req, call)
            calls[variant][name] = call
    same_bodies(calls)
    return calls, runner


def check(variant: str, req: BenchRequest, call: Call) -> None:
    """Fail loudly when a variant does not answer a request as the contract says."""
    status, body = call()
    expected = EXPECTED_STATUS[req.name]
    if status != expected:
        raise AssertionError(
            f"{variant} {req.name}: {status} (expected {expected}): {body[:300]!r}"
        )


def same_bodies(calls: Mapping[str, Mapping[str, Call]]) -> None:
    """Every variant does the same work: the successful answers must be the same JSON."""
    for name in ("list", "get", "create"):
        bodies = {variant: json.loads(c[name]()[1]) for variant, c in calls.items()}
        first = next(iter(bodies.values()))
        for variant, body in bodies.items():
            if body != first:
                raise AssertionError(f"{variant} answers {name} differently from the others")


def _batch(call: Call, n: int) -> float:
    clock = time.process_time
    start = clock()
    for _ in range(n):
        call()
    return (clock() - start) / n


def measure(
    calls: Mapping[str, Mapping[str, Call]],
    *,
    rounds: int = 15,
    batch_seconds: float = 0.05,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, float]]:
    """Median µs per request of every (variant, request)."""
    variants = list(calls)
    sizes: dict[tuple[str, str], int] = {}
    for variant in variants:  # calibrate the batch size (and warm every path up)
        for name in REQUESTS:
            per_call = min(_batch(calls[variant][name], 20) for _ in range(3))
            sizes[variant, name] = max(5, int(batch_seconds / per_call))
    samples: dict[tuple[str, str], list[float]] = {key: [] for key in sizes}
    gc_was_enabled = gc.isenabled()
    try:
        for r in range(rounds):
            order = variants[r % len(variants) :] + variants[: r % len(variants)]
            for name in REQUESTS:
                for variant in order:
                    # As timeit does: no garbage collection inside a timed batch (all four
                    # variants share this process's heap), a full one between batches.
                    gc.enable()
                    gc.collect()
                    gc.disable()
                    batch = _batch(calls[variant][name], sizes[variant, name])
                    samples[variant, name].append(batch)
            if (r + 1) % 5 == 0:
                log(f"  in-process: round {r + 1}/{rounds}")
    finally:
        if gc_was_enabled:
            gc.enable()
    return {
        variant: {name: statistics.median(samples[variant, name]) * 1e6 for name in REQUESTS}
        for variant in variants
    }


def quiet_logs() -> None:
    """No log output while timing (Connexion logs every 4xx at error level)."""
    logging.disable(logging.CRITICAL)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """``python -m bench.inprocess [variant...]``: the in-process table alone."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    variants = tuple(args) or VARIANTS
    quiet_logs()
    calls, runner = build_calls(variants)
    try:
        table = measure(calls, rounds=9)
    finally:
        runner.close()
    floor = table.get("floor")
    for variant, row in table.items():
        cells = []
        for name in REQUESTS:
            ratio = f" ({row[name] / floor[name]:.2f}x)" if floor else ""
            cells.append(f"{name} {row[name]:8.1f}{ratio}")
        print(f"{variant:13s} " + "  ".join(cells))
    return table


if __name__ == "__main__":
    main()
