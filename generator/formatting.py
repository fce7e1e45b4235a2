"""Let the pinned ruff have the last word on every generated Python file."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

# Fixed here, and `--isolated`, so no pyproject near the output can change the bytes.
_RUFF_ARGS = ("format", "--isolated", "--line-length", "100", "--target-version", "py311")
_ISORT_ARGS = (
    "check",
    "--isolated",
    "--select",
    "I",
    "--fix",
    "--exit-zero",
    "--line-length",
    "100",
    "--target-version",
    "py311",
)


def ruff_binary() -> str:
    """The ruff installed beside this interpreter (the pinned one), else ruff's own lookup."""
    beside = Path(sys.executable).with_name("ruff")
    if beside.exists():
        return str(beside)
    from ruff.__main__ import find_ruff_bin

    return str(find_ruff_bin())


def format_files(folder: Path, names: list[str], *, sort_imports: tuple[str, ...] = ()) -> None:
    """Format `names` inside `folder` in place, sorting the imports of `sort_imports` first;
    raise `RuntimeError` with ruff's message on failure."""
    if not names:
        return
    commands = []
    if sort_imports:
        commands.append([ruff_binary(), *_ISORT_ARGS, "--quiet", "--", *sort_imports])
    commands.append([ruff_binary(), *_RUFF_ARGS, "--quiet", "--", *names])
    for command in commands:
        result = subprocess.run(command, cwd=folder, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            problem = result.stderr.strip() or result.stdout.strip()
            raise RuntimeError(f"ruff {command[1]} failed: {problem}")


def format_sources(
    sources: dict[str, str], *, sort_imports: tuple[str, ...] = ()
) -> dict[str, str]:
    """`sources` (file name → text) formatted, by one ruff run over a temporary folder."""
    if not sources:
        return {}
    with tempfile.TemporaryDirectory(prefix="gantry-format-") as folder:
        for name, text in sources.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        present = tuple(name for name in sort_imports if name in sources)
        format_files(Path(folder), sorted(sources), sort_imports=present)
        return {name: Path(folder, name).read_text(encoding="utf-8") for name in sorted(sources)}
