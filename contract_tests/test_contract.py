"""The contract suite, in-process: schemathesis drives the app built by ``create_app``.

Every operation of the spec runs through the examples, coverage and fuzzing phases with all
built-in checks plus ours (``checks.py``), authenticated as the bootstrap superadmin who also
owns a workspace. The stateful phase, which follows the spec's OpenAPI links across calls,
runs against a live server in ``test_stateful.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from contract_tests import checks  # noqa: F401  (registers the custom checks)
from contract_tests.harness import AUTH_HEADERS, build_app

ROOT = Path(__file__).resolve().parents[1]
MAX_EXAMPLES = int(os.environ.get("GANTRY_CONTRACT_EXAMPLES", "20"))
# CI runs are reproducible (same cases every run); set GANTRY_CONTRACT_RANDOM=1 to explore.
DERANDOMIZE = os.environ.get("GANTRY_CONTRACT_RANDOM", "") != "1"

app, spec_document = build_app()
# The same settings an operator's `schemathesis run` picks up from the repository root.
CONFIG = schemathesis.Config.from_path(str(ROOT / "schemathesis.toml"))
# In-process, schemathesis would also mine the app's Python source for constants, and it does
# so lazily: generation would then depend on when the pool fills, which a stateful run cannot
# replay. The spec is the source of truth here.
CONFIG.projects.default.analysis.constants.enabled = False
schema = schemathesis.openapi.from_dict(spec_document, config=CONFIG)
schema.app = app
schema.config.update(headers=AUTH_HEADERS)
schema.config.output.sanitization.update(enabled=False)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    suppress_health_check=list(HealthCheck),
)
def test_operation_keeps_the_contract(case: schemathesis.Case) -> None:
    case.call_and_validate()
