"""The planted-fault self-test: prove that the suite catches what it claims to.

    python -m contract_tests.selftest [--jobs N] [--backend sqlite|postgresql] [FAULT ...]

For each fault of ``contract_tests.faults`` it builds the app with that one fault on a fresh
database, serves it in-process, runs the suite's fast subset against it and prints one line:

    fault <name>: caught by <check> on <METHOD path>
    fault <name>: MISSED

The subset is the real suite, in this order, stopping at the first finding: the probes of the
spec's declared rules (``probes.py``, a few hundred requests) and the session lifetime, the auth
matrix (every operation x every caller), the CSRF probes, the pagination walks, the lifecycle
chains, and schemathesis's examples and coverage phases over every operation. Every response in
it goes through every registered check. A fault's own operation is looked at first (its auth
row, CSRF probes, pagination walk, lifecycle chain and engine cases), which finds most faults
in seconds; the whole subset follows, so nothing the focused pass misses goes unlooked-for. Before the faults, the same subset runs on the clean app
and must find nothing (otherwise a "catch" would prove nothing). Exits 1 if anything is missed.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from contract_tests import lifetimes, parts, probes, rules, spec
from contract_tests.faults import FAULTS, Fault, by_name
from contract_tests.runner import Finding, OutOfReach, load_schema, run_engine
from contract_tests.target import in_process_target
from contract_tests.world import CALLER_NAMES, World

ENGINE_PHASES = ["examples", "coverage"]
SUBSET = ("declared rules", "auth_matrix", "csrf", "pagination", "lifecycle", "engine")


def suite_subset(target: Any, focus: str | None = None) -> Iterator[Finding]:
    """The fast subset of the suite, as a stream of findings.

    ``focus`` (an operationId) first runs the subset's per-operation parts on that operation
    alone: a fault planted there is usually found in seconds instead of after every declared
    rule. The whole subset follows, so what the focused pass misses is still looked for.
    """
    document = spec.Document(target.spec_document())
    world = World(target, document).build()
    schema = load_schema(target, document.raw)
    if focus is not None:
        yield from _operation_parts(world, schema, document, spec.by_id(focus))
        focused = run_engine(
            target, world, phases=ENGINE_PHASES, max_examples=1, seed=1, only=focus
        )
        yield from (f for f in focused.findings if f.operation != "run")
    for name in sorted(rules.declared(document)):
        try:
            yield from probes.run(world, schema, name)
        except OutOfReach:
            continue  # the spec puts it out of reach; the suite reports it as a skip
    if world.session_lifetimes is not None:
        yield from lifetimes.session_absolute_lifetime(world, schema)
    for op in spec.operations():
        for caller in CALLER_NAMES:
            yield from parts.auth_row(world, schema, op, caller)
    for op in parts.csrf_operations():
        for variant in parts.CSRF_VARIANTS:
            yield from parts.csrf_row(world, schema, op, variant)
    for op in spec.list_operations():
        parts.seed_list(world, op)
        yield from parts.pagination_walk(world, schema, op, None)
    for op in parts.lifecycle_operations(document):
        yield from parts.lifecycle(world, schema, op)
    report = run_engine(target, world, phases=ENGINE_PHASES, max_examples=1, seed=1)
    yield from (f for f in report.findings if f.operation != "run")


def _operation_parts(
    world: World, schema: Any, document: spec.Document, op: Any
) -> Iterator[Finding]:
    """The auth matrix row, CSRF probes, pagination walk and lifecycle chain of ``op``."""
    for caller in CALLER_NAMES:
        yield from parts.auth_row(world, schema, op, caller)
    if op in parts.csrf_operations():
        for variant in parts.CSRF_VARIANTS:
            yield from parts.csrf_row(world, schema, op, variant)
    if spec.is_list(op):
        parts.seed_list(world, op)
        yield from parts.pagination_walk(world, schema, op, None)
    for create in parts.lifecycle_operations(document):  # its own chain, or the one it is in
        if create is op or any(
            link.source_id == create.operation_id and link.target_id == op.operation_id
            for link in document.links()
        ):
            yield from parts.lifecycle(world, schema, create)


def run_fault(name: str | None, backend: str) -> tuple[str | None, list[Finding], float]:
    """Run the subset on the app with fault ``name`` (None: the clean app)."""
    started = time.monotonic()
    fault: Fault | None = by_name(name) if name else None
    with in_process_target(
        backend,
        guard=fault.guard if fault else None,
        handlers=fault.handlers if fault else None,
        middleware=fault.middleware if fault else None,
    ) as target:
        found: list[Finding] = []
        for finding in suite_subset(target, focus=fault.operation_id if fault else None):
            found.append(finding)
            if fault is not None:
                break
    return name, found, time.monotonic() - started


def line(name: str, found: list[Finding]) -> str:
    if not found:
        return f"fault {name}: MISSED"
    first = found[0]
    return f"fault {name}: caught by {first.check} on {first.operation}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("faults", nargs="*", help="fault names (default: all)")
    parser.add_argument(
        "--jobs", type=int, default=int(os.environ.get("GANTRY_SELFTEST_JOBS", "2"))
    )
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "postgresql"])
    parser.add_argument("--verbose", action="store_true", help="print each finding's message")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the planted 500s log tracebacks
    names = args.faults or [f.name for f in FAULTS]
    started = time.monotonic()
    context = multiprocessing.get_context("fork")
    ok = True
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        baseline = pool.submit(run_fault, None, args.backend)
        futures = [pool.submit(run_fault, name, args.backend) for name in names]
        _, clean, seconds = baseline.result()
        if clean:
            ok = False
            print(
                f"baseline: the clean app has {len(clean)} finding(s); a catch would prove nothing:"
            )
            for finding in clean[:20]:
                print(f"  {finding}")
        else:
            print(f"baseline: the clean app passes the subset ({seconds:.0f} s)")
        for future in futures:
            name, found, seconds = future.result()
            assert name is not None
            print(line(name, found) + (f"  ({seconds:.0f} s)" if args.verbose else ""), flush=True)
            if args.verbose and found:
                print(f"    {found[0].message[:300]}")
            ok = ok and bool(found)
    print(
        f"self-test: {'all faults caught' if ok else 'FAILED'} in {time.monotonic() - started:.0f} s"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
