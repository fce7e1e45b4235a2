"""Split a block-style YAML spec into pieces that parse on their own: one per top-level member,
and one per path item under `paths`.

A spec author edits one operation at a time, and parsing a whole 2 MB document again (libyaml
plus Python object construction) costs over a second at 2,000 operations. Parsed piece by piece,
each piece's value can be kept by the sha256 of its text, so a rebuild parses only what changed.

The split is on lines: a top-level member starts at column 0, a path item at the indentation of
the first line under `paths:`. It is a guess that the parse then confirms: every piece must parse
to a mapping of exactly one key, the keys must not repeat, and no piece may use an anchor defined
in another. Anything else (flow style at the top, directives, several documents, a quoted string
that spans a boundary) makes the caller parse the whole document instead, which also reports
whatever is wrong with it. Regular expressions do the line work, anchored on the newline that
precedes each line (five times faster than `^` with MULTILINE): this runs on every rebuild.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# Each pattern matches the newline before a line; see `_lines`.
# A line that starts a member at `indent`: not blank, not a comment, not a sequence item.
_MEMBER_START = r"\n{indent}(?=[^ \t\r\n#])(?!-(?:[ \t\r\n]|$))"
_TOP_LEVEL = re.compile(_MEMBER_START.format(indent=""))
# What makes a line split unsafe at the top level: directives, document markers, flow style…
_UNSAFE = re.compile(r"\n(?:%|---|\.\.\.|[{}\[\]?&*!\t])")
_PATHS_HEADER = re.compile(r"paths:[ \t]*(?:#[^\n]*)?\r?\n")
_CONTENT = re.compile(r"\n( *)[^ \t\r\n#]")  # a line that is neither blank nor a comment


@dataclass(frozen=True)
class Piece:
    """Lines of the document that should parse to a one-key mapping."""

    text: str
    in_paths: bool  # a path item (its key is the path) rather than a top-level member

    @property
    def digest(self) -> str:
        """The sha256 of the text: the key its parsed value is kept under."""
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Layout:
    """The pieces in document order; `paths_at` is the index of the first path item, or None
    when `paths` is not split. Lines are 1-based: the first top-level key's, and the line of
    `paths:`, for positions the pieces themselves do not hold."""

    pieces: tuple[Piece, ...]
    paths_at: int | None
    first_key_line: int = 1
    paths_line: int | None = None

    def lines_above(self) -> list[int]:
        """For each piece, the number of lines of the document above it."""
        above, result = 0, []
        for index, piece in enumerate(self.pieces):
            if index == self.paths_at and self.paths_line is not None:
                above = self.paths_line  # the `paths:` line belongs to no piece
            result.append(above)
            above += piece.text.count("\n")
        return result


def split(text: str) -> Layout | None:
    """The pieces of a block-style document, or None when it must be parsed whole."""
    if _UNSAFE.search("\n" + text):
        return None
    starts = _lines(_TOP_LEVEL, text)
    if not starts or _CONTENT.search("\n" + text[: starts[0]]):
        return None  # no members, or content before the first one: not a plain mapping
    first_key_line = text.count("\n", 0, starts[0]) + 1
    starts[0] = 0  # leading comments belong to the first piece
    pieces: list[Piece] = []
    paths_at = paths_line = None
    for start, end in zip(starts, [*starts[1:], len(text)], strict=True):
        header = _PATHS_HEADER.match(text, start)
        items = _path_items(text[header.end() : end]) if header else None
        if items is None:
            pieces.append(Piece(text[start:end], False))
        else:
            paths_at, paths_line = len(pieces), text.count("\n", 0, start) + 1
            pieces.extend(Piece(item, True) for item in items)
    return Layout(tuple(pieces), paths_at, first_key_line, paths_line)


def _path_items(section: str) -> list[str] | None:
    """The text under `paths:`, one string per path item; None when it does not split cleanly."""
    first = _CONTENT.search("\n" + section)
    if first is None:
        return None  # `paths:` with nothing under it: null, parsed whole
    indent = len(first.group(1))
    if indent == 0 or first.group(0)[-1] in "-?{[":
        return None
    if re.search(rf"\n {{0,{indent - 1}}}[^ \t\r\n#]", "\n" + section):
        return None  # a line less indented than the path items
    starts = _lines(re.compile(_MEMBER_START.format(indent=" " * indent)), section)
    starts[0] = 0  # blank and comment lines above the first path item belong to it
    return [section[a:b] for a, b in zip(starts, [*starts[1:], len(section)], strict=True)]


def _lines(pattern: re.Pattern[str], text: str) -> list[int]:
    """Where in `text` the lines matched by `pattern` (which matches their preceding newline)
    start; the first line counts as preceded by one."""
    return [match.start() for match in pattern.finditer("\n" + text)]
