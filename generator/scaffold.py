"""`gantry scaffold`: stub handlers for the operations that have none, answering 501.

For each operation of the spec, the handler is `<handlers>/<handler_module>.py:<handler_name>`
(see `docs/ARCHITECTURE.md`). A module that does not exist is created; a module that exists
keeps every byte of its code: stubs are appended at its end, and the two imports they need are
added to its import block when missing (then sorted by ruff's isort rule, imports only). A name
already bound at the top of a module (a function, an assignment, an import) is never redefined.
The spec is checked exactly as `gantry generate` checks it; nothing is written when it fails.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from .command import display_path, generate
from .diagnostics import GenerationFailed
from .formatting import ruff_binary

IMPORTS = {
    "Request": "from server.runtime.context import Request",
    "NotImplementedYet": "from server.runtime.errors import NotImplementedYet",
}


@dataclass(frozen=True)
class Stub:
    """One handler to write."""

    module: str
    name: str
    operation_id: str
    label: str  # `GET /pets`

    def source(self) -> str:
        """The stub's code: it answers 501 problem+json until someone writes the handler."""
        return (
            f"def {self.name}(request: Request) -> object:\n"
            f'    """{self.label} ({self.operation_id}): not implemented yet."""\n'
            f"    raise NotImplementedYet({json.dumps(f'{self.operation_id} is not implemented yet.')})\n"
        )


def wanted_stubs(spec: Path) -> list[Stub]:
    """Every operation's handler, in the spec's order (raises `GenerationFailed`)."""
    from . import loader
    from .resolve import Resolver
    from .walk import iter_operations

    document = loader.load(spec)
    return [
        Stub(site.handler_module, site.handler_name, site.operation_id, site.label)
        for site in iter_operations(document.data, Resolver(document.data))
    ]


def bound_names(source: str) -> set[str]:
    """Names bound at the top level of a module: functions, classes, assignments, imports."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def new_module(module: str, stubs: Iterable[Stub]) -> str:
    """The text of a handler module that does not exist yet."""
    header = (
        f'"""Handlers of the `{module}` operations (stubs written by `gantry scaffold`)."""\n\n'
        "from __future__ import annotations\n\n" + "\n".join(IMPORTS.values()) + "\n"
    )
    return header + "\n\n" + _stubs(stubs)


def extend_module(source: str, stubs: list[Stub]) -> str:
    """`source` with the missing imports added to its import block and the stubs appended."""
    bound = bound_names(source)
    lines = source.splitlines(keepends=True)
    missing = [line + "\n" for name, line in IMPORTS.items() if name not in bound]
    if missing:
        at = _after_imports(source)
        lines[at:at] = missing
    text = "".join(lines).rstrip("\n") + "\n"
    return text + "\n\n" + _stubs(stubs)


def _stubs(stubs: Iterable[Stub]) -> str:
    return "\n\n".join(stub.source() for stub in stubs)


def _after_imports(source: str) -> int:
    """The line index just after the module's top import block (or its docstring)."""
    body = ast.parse(source).body
    end = 0
    for index, node in enumerate(body):
        is_docstring = (
            index == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        )
        if isinstance(node, ast.Import | ast.ImportFrom) or is_docstring:
            end = node.end_lineno or node.lineno
        else:
            break
    return end


def scaffold(spec: Path, handlers: Path) -> dict[Path, list[Stub]]:
    """Write the missing stubs; returns what was written where."""
    by_module: dict[str, list[Stub]] = {}
    for stub in wanted_stubs(spec):
        by_module.setdefault(stub.module, []).append(stub)
    written: dict[Path, list[Stub]] = {}
    for module, stubs in sorted(by_module.items()):
        path = handlers / f"{module}.py"
        source = path.read_text(encoding="utf-8") if path.exists() else None
        bound = bound_names(source) if source is not None else set()
        todo = [stub for stub in _unique(stubs) if stub.name not in bound]
        if not todo:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        text = new_module(module, todo) if source is None else extend_module(source, todo)
        path.write_text(text, encoding="utf-8")
        written[path] = todo
    if written:
        _sort_imports(sorted(written))
    return written


def _unique(stubs: list[Stub]) -> list[Stub]:
    seen: set[str] = set()
    result = []
    for stub in stubs:
        if stub.name not in seen:
            seen.add(stub.name)
            result.append(stub)
    return result


def _sort_imports(paths: list[Path]) -> None:
    """Let ruff's isort rule place the added imports (it touches nothing but imports)."""
    command = [ruff_binary(), "check", "--select", "I", "--fix", "--quiet", "--exit-zero"]
    subprocess.run([*command, *map(str, paths)], capture_output=True, check=False)


def run(
    spec: str, handlers: str, *, stdout: TextIO = sys.stdout, stderr: TextIO = sys.stderr
) -> int:
    """The `gantry scaffold` command; returns the exit status."""
    shown = display_path(Path(spec))
    try:
        generate(Path(spec))  # the same checks as `gantry generate`, usually from the cache
        written = scaffold(Path(spec), Path(handlers))
    except GenerationFailed as failure:
        for problem in sorted(failure.diagnostics):
            print(problem.format(shown), file=stderr)
        print("gantry scaffold: the spec has errors; nothing written", file=stderr)
        return 1
    if not written:
        print(f"every operation of {shown} has a handler in {handlers}", file=stdout)
    for path, stubs in written.items():
        names = ", ".join(stub.name for stub in stubs)
        print(f"{path.as_posix()}: {len(stubs)} stub(s): {names}", file=stdout)
    return 0
