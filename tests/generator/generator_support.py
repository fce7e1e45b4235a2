"""Paths and helpers shared by the generator tests (fixtures live in conftest.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from generator.command import run

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SPECS = HERE / "specs"
CORPUS = HERE / "corpus"
BROKEN = HERE / "broken"
GOLDEN = HERE / "golden"


def corpus_specs() -> list[Path]:
    """The corpus: small specs of our own, one family of constructs each (YAML and JSON)."""
    return sorted([*CORPUS.glob("*.yaml"), *CORPUS.glob("*.json")])


@dataclass(frozen=True)
class Result:
    """What one `gantry generate` run returned and printed."""

    status: int
    stdout: str
    stderr: str


Generate = Callable[..., Result]


def relative(path: Path) -> str:
    """`path` as the generator is given it in the goldens: relative to the repository root."""
    return path.relative_to(REPO).as_posix()


def call_generate(
    spec: Path | str, out: Path | str, *, check: bool = False, strict: bool = False
) -> Result:
    """Run `gantry generate` in-process (from the current directory) and capture its output."""
    spec_arg = relative(spec) if isinstance(spec, Path) and spec.is_relative_to(REPO) else str(spec)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = run(spec_arg, str(out), check=check, strict=strict, stdout=stdout, stderr=stderr)
    return Result(status, stdout.getvalue(), stderr.getvalue())


def write_spec(folder: Path, text: str, name: str = "openapi.yaml") -> Path:
    """Write an inline test spec and return its path."""
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path
