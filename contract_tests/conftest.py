"""Fixtures of the contract suite: one target (server), world and schema per test module.

A test module picks its database with ``BACKEND`` ("sqlite" or "postgresql"). When
``GANTRY_CONTRACT_BASE_URL`` is set, the SQLite module runs against that live server instead and
the PostgreSQL module is skipped (the live server has whatever database it has).

Knobs (environment): ``GANTRY_CONTRACT_EXAMPLES`` (fuzzing cases per operation and stateful
scenarios, default 20), ``GANTRY_CONTRACT_SEED`` (default 1; ``random`` for a fresh one),
``GANTRY_CONTRACT_WORKERS`` (engine threads, default 1).
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from contract_tests import spec
from contract_tests.runner import EngineReport, env_int, load_schema, run_engine
from contract_tests.target import PG_URL_ENV, Target, in_process_target, live_settings, open_target
from contract_tests.world import World

ENGINE_PHASES = ["examples", "coverage", "fuzzing", "stateful"]


@dataclass
class Contract:
    """Everything a contract test needs on one target."""

    name: str
    target: Target
    world: World
    schema: Any
    seed: int
    _report: EngineReport | None = field(default=None, repr=False)

    def engine_report(self) -> EngineReport:
        """The engine run over every operation (run once, on first use)."""
        if self._report is None:
            self._report = run_engine(
                self.target,
                self.world,
                phases=ENGINE_PHASES,
                max_examples=env_int("GANTRY_CONTRACT_EXAMPLES", 20),
                seed=self.seed,
                workers=env_int("GANTRY_CONTRACT_WORKERS", 1),
            )
        return self._report


def _seed() -> int:
    value = os.environ.get("GANTRY_CONTRACT_SEED", "1").strip()
    return random.randrange(1 << 31) if value == "random" else int(value)


@pytest.fixture(scope="module")
def contract(request: pytest.FixtureRequest) -> Iterator[Contract]:
    backend = getattr(request.module, "BACKEND", "sqlite")
    logging.getLogger("gantry").setLevel(logging.CRITICAL)  # 4xx/5xx logs are the point here
    with ExitStack() as stack:
        if live_settings() is not None:
            if backend != "sqlite":
                pytest.skip("live mode: the server's own database is tested")
            target = stack.enter_context(open_target())
            name = f"live {target.base_url}"
        else:
            if backend == "postgresql" and not os.environ.get(PG_URL_ENV, "").strip():
                pytest.skip(f"{PG_URL_ENV} is not set")
            target = stack.enter_context(in_process_target(backend))
            name = f"in-process {backend}"
        document = spec.Document(target.spec_document())
        missing = {spec.label(op) for op in spec.operations()} - document.labels()
        assert not missing, f"routed but not in the served document: {sorted(missing)}"
        world = World(target, document).build()
        yield Contract(
            name=name,
            target=target,
            world=world,
            schema=load_schema(target, document.raw),
            seed=_seed(),
        )


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Show the engine's cases-per-operation tables (printed by their tests, even under xdist)."""
    for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get(
        "failed", []
    ):
        if "test_engine_cases_per_operation" in report.nodeid and report.when == "call":
            text = report.capstdout
            if text:
                terminalreporter.write_sep("-", "contract suite: cases per operation")
                terminalreporter.write(text)
