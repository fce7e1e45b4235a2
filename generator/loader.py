"""Read a YAML or JSON document, and say where each of its nodes is when a diagnostic asks.

Positions are only needed to report problems, so the value is read the fast way first:

- JSON by `json.loads` (duplicate keys and non-standard constants send it down the slow path);
- block-style YAML piece by piece (`pieces`), each piece's value taken from `memo` when its
  text is unchanged since the last run.

The slow path, which is also how the `SourceMap` is made (on first use), has libyaml
(`yaml.CSafeLoader`) compose the node graph and one walk over it build the plain value and the
map from JSON pointer to position. JSON goes the same way (it is YAML flow syntax), so
diagnostics can point into either.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import jsonpointer, pieces
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
    """A loaded spec: its bytes' sha256, its text and value, and problems found while reading."""

    path: Path
    sha256: str
    text: str
    data: dict[str, Any]
    problems: tuple[Located, ...] = ()
    known_positions: SourceMap | None = field(default=None, repr=False, compare=False)
    # When read piece by piece: the digest of each piece's text, by ("paths", path) for a path
    # item and ("", key) for a top-level member. Equal digests mean equal values.
    digests: dict[tuple[str, str], str] | None = field(default=None, repr=False, compare=False)
    # ... and how it was cut, with each piece's key (to read positions one piece at a time).
    layout: pieces.Layout | None = field(default=None, repr=False, compare=False)
    piece_keys: tuple[str, ...] = field(default=(), repr=False, compare=False)
    # The other files its `$ref`s brought in (see `bundle`), as (path, sha256 of the bytes).
    inputs: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @functools.cached_property
    def source_map(self) -> SourceMap:
        """Where every node came from: read again, piece by piece as diagnostics ask (when the
        document was read in pieces) or whole."""
        if self.known_positions is not None:
            return self.known_positions
        if self.layout is not None:
            return _PiecewiseSourceMap(self.layout, self.piece_keys)
        try:
            return _parse_whole(self.text)[1]
        except GenerationFailed:  # valid JSON that YAML cannot read: no positions
            return SourceMap()


class _PiecewiseSourceMap(SourceMap):
    """A `SourceMap` that reads the positions of a piece when a pointer into it is located."""

    def __init__(self, layout: pieces.Layout, keys: tuple[str, ...]) -> None:
        super().__init__({"": (layout.first_key_line, 1)})
        if layout.paths_line is not None:
            self.positions["/paths"] = (layout.paths_line, 1)
        self._unread = {
            (piece.in_paths, key): (piece, above)
            for piece, above, key in zip(layout.pieces, layout.lines_above(), keys, strict=True)
        }

    def locate(self, pointer: str) -> tuple[int, int]:
        """The position of `pointer` (reading its piece first), or of its nearest ancestor."""
        parts = jsonpointer.split(pointer)
        owners = [(False, parts[0])] if parts else []
        if parts[:1] == ["paths"] and len(parts) > 1:
            owners.append((True, parts[1]))
        for owner in owners:
            if owner in self._unread:
                self._read(owner[0], *self._unread.pop(owner))
        return super().locate(pointer)

    def _read(self, in_paths: bool, piece: pieces.Piece, lines_above: int) -> None:
        loader = _Loader(piece.text)
        try:
            builder = _Builder(loader)
            node = loader.get_single_node()
            if node is not None:
                builder.value(node, "")
        except yaml.YAMLError:  # it was read once already: cannot happen
            return
        finally:
            loader.dispose()
        prefix = "/paths" if in_paths else ""
        for pointer, (line, column) in builder.positions.items():
            if pointer:  # the piece's own root is not a node of the document
                self.positions[prefix + pointer] = (line + lines_above, column)


# Parsed values of YAML pieces, by the sha256 of the piece's text (see `pieces`).
PieceMemo = dict[str, Any]


def load(path: Path) -> Document:
    """Load `path`; raise `GenerationFailed` when it cannot be read or parsed at all."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenerationFailed(
            [Located(1, 1, "error", f"cannot read spec: {exc.strerror}")]
        ) from exc
    return loads(raw, path)


def loads(raw: bytes, path: Path, memo: PieceMemo | None = None) -> Document:
    """Parse `raw` (the content of `path`) into a `Document`.

    `memo` holds the values of YAML pieces parsed before; it is updated to hold exactly the
    pieces of this document (empty when the document was parsed whole).
    """
    sha256 = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GenerationFailed(
            [Located(1, 1, "error", f"spec is not UTF-8: {exc.reason}")]
        ) from exc
    memo = memo if memo is not None else {}
    if text.lstrip().startswith("{"):
        value = _parse_json(text)
        if value is not None:
            return Document(path, sha256, text, value)
    else:
        read = _parse_pieces(text, memo)
        if read is not None:
            data, digests, layout, keys = read
            return Document(
                path, sha256, text, data, digests=digests, layout=layout, piece_keys=keys
            )
    memo.clear()
    data, source_map, problems = _parse_whole(text)
    return Document(path, sha256, text, data, problems, source_map)


def _parse_whole(text: str) -> tuple[dict[str, Any], SourceMap, tuple[Located, ...]]:
    """The value, positions and reading problems of the whole document; raise
    `GenerationFailed` when it cannot be read at all."""
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
    return data, SourceMap(builder.positions), tuple(builder.problems)


class _NotPlain(Exception):
    """The fast path met something only the slow path reports properly."""


def _parse_json(text: str) -> dict[str, Any] | None:
    """A JSON document's value, or None for anything unusual (duplicate keys, NaN, not JSON)."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result = dict(pairs)
        if len(result) != len(pairs):
            raise _NotPlain
        return result

    def constant(name: str) -> Any:
        raise _NotPlain

    try:
        data = json.loads(text, object_pairs_hook=unique, parse_constant=constant)
    except (ValueError, _NotPlain, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _parse_pieces(
    text: str, memo: PieceMemo
) -> tuple[dict[str, Any], dict[tuple[str, str], str], pieces.Layout, tuple[str, ...]] | None:
    """A block-style YAML document's value, assembled from its pieces, and the pieces'
    digests; None when the document does not split cleanly. `memo` ends up holding exactly this
    document's pieces."""
    layout = pieces.split(text)
    if layout is None:
        return None
    values: PieceMemo = {}
    digests: dict[tuple[str, str], str] = {}
    keys: list[str] = []
    data: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    for index, piece in enumerate(layout.pieces):
        digest = piece.digest
        value = memo[digest] if digest in memo else _parse_piece(piece.text)
        if value is None:
            return None
        values[digest] = value
        ((key, member),) = value.items()
        target = paths if piece.in_paths else data
        if key in target or (index == layout.paths_at and "paths" in data):
            return None  # a duplicate key: the slow path says where
        if index == layout.paths_at:
            data["paths"] = paths
        target[key] = member
        digests["paths" if piece.in_paths else "", key] = digest
        keys.append(key)
    memo.clear()
    memo.update(values)
    return data, digests, layout, tuple(keys)


def _parse_piece(text: str) -> dict[str, Any] | None:
    """The value of one piece: a mapping of one key, read without problems; else None."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        builder = _Builder(loader, positions=False)
        value = builder.value(node, "") if node is not None else None
    except yaml.YAMLError:
        return None
    finally:
        loader.dispose()
    if builder.problems or not isinstance(value, dict) or len(value) != 1:
        return None
    return value


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

    def __init__(self, loader: yaml.SafeLoader, *, positions: bool = True) -> None:
        self.loader = loader
        self.record = positions
        self.positions: dict[str, tuple[int, int]] = {}
        self.problems: list[Located] = []
        self._active: set[int] = set()

    def value(self, node: yaml.Node, pointer: str) -> Any:
        if not pointer and self.record:
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
            item_pointer = f"{pointer}/{index}" if self.record else ""
            if self.record:
                self.positions[item_pointer] = (
                    item.start_mark.line + 1,
                    item.start_mark.column + 1,
                )
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
            if not self.record:
                if key in result:
                    self.problems.append(Located(1, 1, "error", f"duplicate key {key!r}"))
                result[key] = self.value(value_node, "")
                continue
            key_pointer = jsonpointer.child(pointer, key)
            position = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                first_line = self.positions[key_pointer][0]
                message = f"duplicate key {key!r} (first on line {first_line})"
                self.problems.append(Located(*position, "error", message))
            self.positions[key_pointer] = position  # the last occurrence wins, as in PyYAML
            result[key] = self.value(value_node, key_pointer)
        return result
