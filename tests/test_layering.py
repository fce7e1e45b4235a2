"""The pipeline's dependency rules (docs/ARCHITECTURE.md), checked on the import statements."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB = set(sys.stdlib_module_names)


def _imports(package: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(
                    (str(path.relative_to(ROOT)), a.name.split(".")[0]) for a in node.names
                )
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
    return found


@pytest.mark.parametrize("package", ["generator"])
def test_generator_imports_neither_generated_nor_server(package: str) -> None:
    offending = {(f, m) for f, m in _imports(package) if m in {"generated", "server"}}
    assert not offending


def test_generated_code_imports_only_stdlib_flask_and_pydantic() -> None:
    allowed = STDLIB | {"flask", "pydantic", "typing_extensions", "__future__"}
    offending = {(f, m) for f, m in _imports("generated") if m not in allowed}
    assert not offending


def test_server_never_imports_the_generator() -> None:
    offending = {(f, m) for f, m in _imports("server") if m == "generator"}
    assert not offending
