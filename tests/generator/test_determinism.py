"""The same spec gives the same bytes: twice in a row, under other hash seeds, cold or cached."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from generator_support import GOLDEN, REPO, SPECS, Generate, relative

PETSTORE = SPECS / "petstore_mini.yaml"


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_generating_twice_gives_identical_bytes(generate: Generate, tmp_path: Path) -> None:
    assert generate(PETSTORE, tmp_path / "a").status == 0  # cold cache
    assert generate(PETSTORE, tmp_path / "b").status == 0  # warm cache
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_identical_bytes_under_different_hash_seeds(tmp_path: Path) -> None:
    trees = []
    for seed in ("1", "2"):
        out = tmp_path / f"seed{seed}"
        env = {
            **os.environ,
            "PYTHONHASHSEED": seed,
            "GANTRY_CACHE_DIR": str(tmp_path / f"cache{seed}"),  # cold: every step really runs
        }
        command = [
            sys.executable,
            "-m",
            "gantry.cli",
            "generate",
            "--spec",
            relative(PETSTORE),
            "--out",
            str(out),
        ]
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr
        trees.append(_tree(out))
    assert trees[0] == trees[1]
    # the command generates the models in a forked worker, the tests in-process: same bytes
    assert trees[0] == _tree(GOLDEN / "petstore_mini")


def test_diagnostics_are_identical_under_different_hash_seeds(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text(
        "openapi: 3.1.0\n"
        "info: {title: t, version: '1'}\n"
        "paths: {}\n"
        "components:\n"
        "  schemas:\n"
        "    Pet:\n"
        "      type: object\n"
        "      properties:\n"
        "        a: {type: strin}\n"
        "        b: {type: integer, minimum: x}\n"
        "        c: {type: string, maxLength: -1}\n"
    )
    outputs = set()
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "GANTRY_CACHE_DIR": ""}
        command = [
            sys.executable,
            "-m",
            "gantry.cli",
            "generate",
            "--spec",
            str(spec),
            "--out",
            str(tmp_path / "out"),
        ]
        result = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert result.returncode == 1
        outputs.add(result.stderr)
    assert len(outputs) == 1
    assert outputs.pop().count(": error: ") == 3
