"""The stateful phase: schemathesis chains calls along the spec's OpenAPI links.

It runs through schemathesis's own engine against a live server on 127.0.0.1, as an operator's
`schemathesis run` would, with all checks and Gantry's custom checks loaded as hooks. (The
pytest state machine cannot replay scenarios against one shared database, so it cannot shrink
them; the engine reports each failing chain as found.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from contract_tests.harness import BOOTSTRAP_TOKEN
from contract_tests.live import live_server

ROOT = Path(__file__).resolve().parents[1]
SCHEMATHESIS = Path(sys.executable).with_name("st")
EXAMPLES = os.environ.get("GANTRY_CONTRACT_STATEFUL_EXAMPLES", "30")


def test_linked_call_chains_keep_the_contract(tmp_path: Path) -> None:
    database_url = os.environ.get("GANTRY_TEST_DATABASE_URL", "")
    if database_url:
        from contract_tests.pg import reset_database

        reset_database(database_url)
    with live_server(tmp_path, BOOTSTRAP_TOKEN, database_url=database_url) as server:
        result = subprocess.run(
            [
                str(SCHEMATHESIS),
                "run",
                f"{server.api_url}/openapi.json",
                "--url",
                server.api_url,
                "-H",
                f"Authorization: Bearer {server.token}",
                "--checks",
                "all",
                "--phases",
                "stateful",
                "--max-examples",
                EXAMPLES,
                "--seed",
                os.environ.get("GANTRY_CONTRACT_SEED", "1"),
            ],
            cwd=ROOT,  # picks up schemathesis.toml
            env={
                **os.environ,
                "SCHEMATHESIS_HOOKS": "contract_tests.checks",
                "PYTHONPATH": str(ROOT),
            },
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-5000:]
    print(result.stdout[-3000:])
