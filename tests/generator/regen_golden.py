"""Refresh the golden records: `python tests/generator/regen_golden.py` from the repository root.

Rewrites `golden/<spec>/` for every spec in `specs/` and `corpus/`, and `broken/<case>.expected`
for every broken spec. Review the diff before committing: the goldens are what the tests hold us to.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def golden_specs() -> list[Path]:
    """Every spec with a golden tree: `specs/*.yaml` and the corpus (YAML and JSON)."""
    corpus = [*(HERE / "corpus").glob("*.yaml"), *(HERE / "corpus").glob("*.json")]
    return sorted((HERE / "specs").glob("*.yaml")) + sorted(corpus)


def regenerate() -> None:
    """Regenerate every golden tree and every expected-diagnostics file."""
    sys.path.insert(0, str(REPO))
    os.chdir(REPO)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["GANTRY_CACHE_DIR"] = cache
        from generator.command import run

        for spec in golden_specs():
            golden = HERE / "golden" / spec.stem
            shutil.rmtree(golden, ignore_errors=True)
            status = run(_relative(spec), _relative(golden), stdout=io.StringIO())
            print(f"{'ok  ' if status == 0 else 'FAIL'} {_relative(golden)}")
        for spec in sorted((HERE / "broken").glob("*.yaml")):
            stderr = io.StringIO()
            with tempfile.TemporaryDirectory() as out:
                status = run(_relative(spec), out, stdout=io.StringIO(), stderr=stderr)
            spec.with_suffix(".expected").write_text(stderr.getvalue(), encoding="utf-8")
            print(f"{'ok  ' if status == 1 else 'FAIL'} {_relative(spec.with_suffix('.expected'))}")


if __name__ == "__main__":
    regenerate()
