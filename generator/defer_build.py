"""Every pydantic model of a generated `models.py` built on first use (`defer_build=True`).

A model built at import takes into its core schema the schemas of every model it references,
transitively, and pydantic walks all of them again for each model: a module whose models
reference one another in long chains (as real APIs do) imports in time that grows with the
square of its size. A deferred model is built on its first use (validation, construction,
serialisation, `model_json_schema`) from the same schema, so validation does not change and
importing grows linearly; each model's first use in a process pays for its build once.

A model class gets `defer_build=True` in its own config. A root model cannot take it that way
alone: for `class Pets(RootModel[list[Pet]])` pydantic makes the base `RootModel[list[Pet]]` at
import and builds it there, with `Pet`'s schema and everything `Pet` references. Root models
therefore derive from `_DeferredRootModel[...]` instead, a `RootModel` whose config defers it,
so that the base pydantic makes for them is deferred too.

The edit is textual, at positions the module's syntax tree gives, so the rest of the module
stays as datamodel-code-generator wrote it (ruff sorts its imports and formats it afterwards).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

_SETTING = "defer_build=True"
_CONFIG = "ConfigDict"
_ROOT_BASE = "_DeferredRootModel"
_ROOT_TYPE = "_Root"


@dataclass(frozen=True, order=True)
class _Edit:
    """`removed` characters at (`row`, `column`) replaced by `text`."""

    row: int
    column: int
    removed: int
    text: str


def defer_model_builds(source: str, tree: ast.Module) -> str:
    """`source` (whose syntax tree is `tree`) with every pydantic model class at its top level
    deferred: `RootModel[...]` bases become `_DeferredRootModel[...]` (defined after the
    imports), and every other model class has `defer_build=True` in its config, added to its
    own `ConfigDict(...)` or as a new `model_config` first in its body (after its docstring).
    A class whose config is written some other way keeps it."""
    imported = _pydantic_imports(tree)
    defined = {node.name for node in tree.body if isinstance(node, ast.ClassDef | ast.FunctionDef)}
    defined |= {
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    config = next((local for local, name in imported.items() if name == _CONFIG), None)
    if (config is None and _CONFIG in defined) or {_ROOT_BASE, _ROOT_TYPE} & defined:
        return source  # the module's own names are in the way (no schema has such a name yet)
    config_name = config or _CONFIG
    lines = source.splitlines(keepends=True)
    edits: list[_Edit] = []
    models: set[str] = set()
    root_model = ""  # pydantic's `RootModel` as the module names it, once a class derives from it
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        roots = [name for name in _generic_bases(node) if imported.get(name.id) == "RootModel"]
        if roots:
            root_model = roots[0].id
            edits += [_rename(name, lines) for name in roots]
        elif _is_model(node, imported, models):
            edit = _configure(node, lines, config_name)
            if edit is not None:
                edits.append(edit)
        else:
            continue
        models.add(node.name)
    if not edits:
        return source
    preamble = _preamble(tree, config is None, config_name, root_model)
    edits.append(_Edit(_after_imports(tree), 0, 0, preamble))
    for edit in sorted(edits, reverse=True):  # the last first: the positions before it hold
        if edit.row < len(lines):
            line = lines[edit.row]
            lines[edit.row] = line[: edit.column] + edit.text + line[edit.column + edit.removed :]
        else:
            lines.append(edit.text)
    return "".join(lines)


def _pydantic_imports(tree: ast.Module) -> dict[str, str]:
    """Local name → pydantic name, for what the module imports from pydantic at top level."""
    names = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "pydantic" and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = alias.name
    return names


def _generic_bases(node: ast.ClassDef) -> list[ast.Name]:
    """`Name` of each base the class writes `Name[...]`."""
    return [
        base.value
        for base in node.bases
        if isinstance(base, ast.Subscript) and isinstance(base.value, ast.Name)
    ]


def _is_model(node: ast.ClassDef, imported: dict[str, str], models: set[str]) -> bool:
    """Whether a base of the class is pydantic's `BaseModel` or `RootModel`, or a model the
    module defined above it."""
    for base in node.bases:
        target = base.value if isinstance(base, ast.Subscript) else base
        if isinstance(target, ast.Name) and (
            imported.get(target.id) in ("BaseModel", "RootModel") or target.id in models
        ):
            return True
    return False


def _rename(name: ast.Name, lines: list[str]) -> _Edit:
    """`RootModel` in a base replaced by the deferred root model."""
    row = name.lineno - 1
    column = _index(lines[row], name.col_offset)
    return _Edit(row, column, len(name.id), _ROOT_BASE)


def _configure(node: ast.ClassDef, lines: list[str], config_name: str) -> _Edit | None:
    """`defer_build=True` into the class's config; None when it needs nothing, or when its
    config is not a `ConfigDict(...)` call this can add to."""
    own = _own_config(node)
    if own is not None:
        call = own.value
        if not (
            isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == config_name
        ):
            return None
        if any(keyword.arg in ("defer_build", None) for keyword in call.keywords):
            return None  # says so already, or `**options` might
        # Just inside the parenthesis, which opens where the call's name ends.
        row = (call.func.end_lineno or call.func.lineno) - 1
        column = _index(lines[row], call.func.end_col_offset or 0) + 1
        separator = ", " if call.args or call.keywords else ""
        return _Edit(row, column, 0, _SETTING + separator)
    first = node.body[0]
    if first.lineno == node.lineno:  # `class A(BaseModel): ...` on one line
        return None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):  # a docstring
        row = first.end_lineno or first.lineno
    else:
        row = first.lineno - 1
    text = f"{' ' * first.col_offset}model_config = {config_name}({_SETTING})\n"
    return _Edit(row, 0, 0, text)


def _own_config(node: ast.ClassDef) -> ast.Assign | ast.AnnAssign | None:
    """The class body's assignment to `model_config`, if it has one."""
    for statement in node.body:
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == "model_config" for target in targets):
            return statement
    return None


def _preamble(tree: ast.Module, import_config: bool, config_name: str, root_model: str) -> str:
    """What goes after the imports: the imports the edits need, and the deferred root model
    (derived from `root_model`, pydantic's `RootModel` as the module names it; "": none)."""
    imports = [f"from pydantic import {_CONFIG}\n"] if import_config else []
    if not root_model:
        return "".join(imports)
    if not _imports_type_var(tree):
        imports.append("from typing import TypeVar\n")
    return "".join(imports) + (
        f'\n{_ROOT_TYPE} = TypeVar("{_ROOT_TYPE}")\n\n\n'
        f"class {_ROOT_BASE}({root_model}[{_ROOT_TYPE}]):\n"
        '    """`RootModel`, deferred: the base pydantic makes for `class Pets(RootModel[list[Pet]])`\n'
        f'    is built at import, with every schema `Pet` references; `{_ROOT_BASE}[...]` is not."""\n'
        "\n"
        f"    model_config = {config_name}({_SETTING})\n"
    )


def _imports_type_var(tree: ast.Module) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module in ("typing", "typing_extensions")
        and any(alias.name == "TypeVar" and alias.asname is None for alias in node.names)
        for node in tree.body
    )


def _after_imports(tree: ast.Module) -> int:
    """The line index just after the module's last top-level import."""
    ends = [
        node.end_lineno or node.lineno
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    return max(ends, default=0)


def _index(line: str, utf8_column: int) -> int:
    """The string index of a column that the syntax tree gives in UTF-8 bytes."""
    return len(line.encode("utf-8")[:utf8_column].decode("utf-8"))
