"""Read a YAML or JSON document once, keeping the line and column of every node.

libyaml (`yaml.CSafeLoader`) composes the node graph; one walk over it builds the plain Python
value and, alongside it, a `SourceMap` from JSON pointer to position. JSON is read by the same
path (it is YAML flow syntax), so diagnostics can point into either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import jsonpointer
from .diagnostics import Diagnostic, GenerationFailed, Located

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Loader = yaml.SafeLoader

_STR_TAG = "tag:yaml.org,2002:str"
# OpenAPI documents are JSON: an unquoted YAML date stays the string it was written as.
_VERBATIM_TAGS = frozenset({_STR_TAG, "tag:yaml.org,2002:timestamp"})


@dataclass(frozen=True)
class SourceMap:
    """Where each node of the document starts: pointer → (line, column), both 1-based.

    A mapping member is placed at its key, a sequence item at the item.
    """

    positions: dict[str, tuple[int, int]] = field(default_factory=dict)

    def locate(self, pointer: str) -> tuple[int, int]:
        """The position of `pointer`, or of its nearest ancestor the document has."""
        while pointer not in self.positions and pointer:
            pointer = jsonpointer.parent(pointer)
        return self.positions.get(pointer, (1, 1))

    def locate_diagnostic(self, diagnostic: Diagnostic) -> Located:
        """Place a diagnostic at the line and column of its pointer."""
        line, column = self.locate(diagnostic.pointer)
        return Located(line, column, diagnostic.severity.value, diagnostic.message)


@dataclass(frozen=True)
class Document:
    """A loaded spec: its bytes' sha256, its value, and where every node came from."""

    path: Path
    sha256: str
    data: dict[str, Any]
    source_map: SourceMap
    problems: tuple[Located, ...] = ()


def load(path: Path) -> Document:
    """Load `path`; raise `GenerationFailed` when it cannot be read or parsed at all."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenerationFailed(
            [Located(1, 1, "error", f"cannot read spec: {exc.strerror}")]
        ) from exc
    return loads(raw, path)


def loads(raw: bytes, path: Path) -> Document:
    """Parse `raw` (the content of `path`) into a `Document`."""
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenerationFailed(
            [Located(1, 1, "error", f"spec is not UTF-8: {exc.reason}")]
        ) from exc
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        builder = _Builder(loader)
        data = builder.value(node, "") if node is not None else None
    except yaml.MarkedYAMLError as exc:
        raise GenerationFailed([_located_yaml_error(exc)]) from exc
    except yaml.YAMLError as exc:
        raise GenerationFailed([Located(1, 1, "error", f"YAML: {exc}")]) from exc
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise GenerationFailed([Located(1, 1, "error", "the document must be a mapping")])
    return Document(path, sha256, data, SourceMap(builder.positions), tuple(builder.problems))


def _located_yaml_error(exc: yaml.MarkedYAMLError) -> Located:
    mark = exc.problem_mark or exc.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    start = exc.context_mark
    context, problem = exc.context or "", exc.problem or ""
    if context.startswith("while parsing a flow ") and start is not None and problem:
        # An unclosed `{` or `[`: libyaml notices only where the next thing starts.
        kind = context.removeprefix("while parsing a ")
        message = f"YAML syntax: this {kind} is not closed ({problem} by {line}:{column})"
        return Located(start.line + 1, start.column + 1, "error", message)
    message = f"YAML syntax: {problem or context}"
    if (
        context
        and problem
        and start is not None
        and (start.line, start.column)
        != (
            line - 1,
            column - 1,
        )
    ):
        message += f" ({context} that starts at {start.line + 1}:{start.column + 1})"
    return Located(line, column, "error", message)


class _Builder:
    """Turns a composed node graph into plain values and records positions on the way."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[Located] = []
        self._active: set[int] = set()

    def value(self, node: yaml.Node, pointer: str) -> Any:
        if not pointer:
            self.positions[""] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.ScalarNode):
            if node.tag in _VERBATIM_TAGS:
                return node.value
            return self.loader.construct_object(node, deep=True)
        if id(node) in self._active:
            position = (node.start_mark.line + 1, node.start_mark.column + 1)
            self.problems.append(Located(*position, "error", "recursive YAML alias"))
            return None
        self._active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, pointer)
            return self._mapping(node, pointer)
        finally:
            self._active.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, pointer: str) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            item_pointer = f"{pointer}/{index}"
            self.positions[item_pointer] = (item.start_mark.line + 1, item.start_mark.column + 1)
            items.append(self.value(item, item_pointer))
        return items

    def _mapping(self, node: yaml.MappingNode, pointer: str) -> dict[str, Any]:
        self.loader.flatten_mapping(node)  # resolves `<<` merge keys
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = str(key_node.value)  # `200:` stays "200", as JSON would have it
            else:
                key = str(self.loader.construct_object(key_node, deep=True))
            key_pointer = jsonpointer.child(pointer, key)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                first_line = self.positions[key_pointer][0]
                message = f"duplicate key {key!r} (first on line {first_line})"
                self.problems.append(Located(*position, "error", message))
            self.positions[key_pointer] = position  # the last occurrence wins, as in PyYAML
            result[key] = self.value(value_node, key_pointer)
        return result
