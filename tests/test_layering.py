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


def _module_imports(package: str) -> set[tuple[str, str]]:
    """(file, full module name) for every absolute import under ``package``."""
    found: set[tuple[str, str]] = set()
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update((where, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.update((where, f"{node.module}.{a.name}") for a in node.names)
    return found


def _under(module: str, *prefixes: str) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_domain_knows_nothing_of_http() -> None:
    """Rules are called by handlers, bootstrap and background jobs alike."""
    offending = {
        (f, m)
        for f, m in _module_imports("server/domain")
        if _under(m, "flask", "werkzeug", "server.runtime", "server.handlers", "server.serving")
    }
    assert not offending


def test_handlers_reach_the_database_only_through_the_domain() -> None:
    offending = {
        (f, m)
        for f, m in _module_imports("server/handlers")
        if _under(m, "sqlalchemy", "server.storage")
    }
    assert not offending


# What a module may take from SQLAlchemy without issuing a query: the session type it passes on
# and the exceptions it turns into answers.
_SQLALCHEMY_PASSIVE = ("sqlalchemy.orm.Session", "sqlalchemy.exc")


def test_only_storage_issues_queries() -> None:
    offending = {
        (f, m)
        for f, m in _module_imports("server")
        if _under(m, "sqlalchemy")
        and not f.startswith("server/storage/")
        and not _under(m, *_SQLALCHEMY_PASSIVE)
    }
    assert not offending
