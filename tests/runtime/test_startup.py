"""Start-up loads no migration machinery when the database is already at the head revision."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from alembic.script import ScriptDirectory

from server.storage.db import alembic_config, script_heads

ROOT = Path(__file__).resolve().parents[2]
_START = """
import pathlib, sys
from server.config import Config
from server.app import create_app
create_app(Config(var_dir=pathlib.Path(sys.argv[1]), secret_key="x"))
print("alembic" in sys.modules)
"""


def test_script_heads_are_alembics() -> None:
    assert script_heads() == frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def _start(var_dir: Path) -> bool:
    """Run ``create_app`` in a fresh interpreter; whether it imported Alembic."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GANTRY_ARGON2_PROFILE": "fast"}
    env.pop("GANTRY_DATABASE_URL", None)
    out = subprocess.run(
        [sys.executable, "-c", _START, str(var_dir)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_only_the_first_start_migrates(tmp_path: Path) -> None:
    assert _start(tmp_path) is True  # a fresh database: Alembic creates the schema
    assert _start(tmp_path) is False  # at the head already: nothing to load
