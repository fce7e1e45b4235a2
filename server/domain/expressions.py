"""The expression language of workflow steps: lookups in JSON values, nothing else.

A string in a step's inputs may hold expressions, ``${…}``::

    expression := "${" root segment* "}"
    root       := "input" | "variables" | "steps" | "run"
    segment    := "." name | "[" integer "]" | "[" quoted "]"
    name       := (letter | "_") (letter | digit | "_")*
    quoted     := '"' text '"' | "'" text "'"      (no escapes: the other quote is free)

Spaces may surround the path inside the braces. ``$${`` writes a literal ``${``.

A string that is exactly one expression evaluates to the value it finds, of any JSON type;
expressions inside longer text are written into it (strings as they are, anything else as
compact JSON). Evaluation only looks keys up in mappings and indexes up in lists of the scope
(``input``, ``variables``, ``run``, ``steps``): there are no operators, no calls, no attributes,
so an expression can reach nothing but the JSON values a run already has.

``check`` finds, when a workflow is saved, every expression that does not parse, starts
elsewhere, or names a step that is not an earlier one (or names it without ``.input``,
``.output`` or ``.status``); ``evaluate`` resolves them when the step runs and raises
``EvaluationError`` naming the expression when a lookup finds nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ROOTS",
    "STEP_FIELDS",
    "EvaluationError",
    "Lookup",
    "ParseError",
    "check",
    "evaluate",
    "lookups",
    "parse",
]

ROOTS = ("input", "variables", "steps", "run")
STEP_FIELDS = ("input", "output", "status")
RUN_FIELDS = ("id", "attempt")
MAX_SEGMENTS = 32

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INDEX = re.compile(r"\[\s*(\d{1,9})\s*\]")
_QUOTED = re.compile(r"""\[\s*(?:"([^"]*)"|'([^']*)')\s*\]""")
_OPEN = "${"
_ESCAPED_OPEN = "$${"

Segment = str | int


@dataclass(frozen=True, slots=True)
class Lookup:
    """One expression: where it starts and the keys and indexes it follows."""

    source: str  # as written, ``${…}`` included
    root: str
    segments: tuple[Segment, ...]


class ParseError(ValueError):
    """Text whose ``${…}`` is not an expression of the grammar."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


class EvaluationError(LookupError):
    """An expression whose lookup found nothing when its step ran."""

    def __init__(self, expression: str, reason: str) -> None:
        super().__init__(f"{expression}: {reason}")
        self.expression = expression
        self.reason = reason


# ── parsing ─────────────────────────────────────────────────────────────────────────────────


def parse(text: str) -> list[str | Lookup]:
    """``text`` as literal pieces and lookups, in order (``$${`` is a literal ``${``)."""
    pieces: list[str | Lookup] = []
    literal: list[str] = []
    at = 0
    while at < len(text):
        if text.startswith(_ESCAPED_OPEN, at):
            literal.append(_OPEN)
            at += len(_ESCAPED_OPEN)
            continue
        if text.startswith(_OPEN, at):
            lookup, at = _expression(text, at)
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(lookup)
            continue
        literal.append(text[at])
        at += 1
    if literal:
        pieces.append("".join(literal))
    return pieces


def _expression(text: str, start: int) -> tuple[Lookup, int]:
    """The expression opening at ``start`` and where the text goes on after its ``}``."""
    at = _skip_spaces(text, start + len(_OPEN))
    name = _NAME.match(text, at)
    if name is None:
        raise ParseError(_excerpt(text, start), "an expression starts with a name")
    root = name.group()
    if root not in ROOTS:
        raise ParseError(
            _excerpt(text, start),
            f"{root!r} is not a root; use {', '.join(ROOTS)}",
        )
    at = name.end()
    segments: list[Segment] = []
    while True:
        at = _skip_spaces(text, at)
        if at >= len(text):
            raise ParseError(_excerpt(text, start), "the expression has no closing '}'")
        char = text[at]
        if char == "}":
            at += 1
            break
        if len(segments) >= MAX_SEGMENTS:
            raise ParseError(
                _excerpt(text, start), f"an expression follows at most {MAX_SEGMENTS} keys"
            )
        if char == ".":
            key = _NAME.match(text, at + 1)
            if key is None:
                raise ParseError(_excerpt(text, start), "'.' is followed by a name")
            segments.append(key.group())
            at = key.end()
        elif char == "[":
            index = _INDEX.match(text, at)
            quoted = _QUOTED.match(text, at)
            if index is not None:
                segments.append(int(index.group(1)))
                at = index.end()
            elif quoted is not None:
                segments.append(quoted.group(1) if quoted.group(1) is not None else quoted.group(2))
                at = quoted.end()
            else:
                raise ParseError(
                    _excerpt(text, start), "'[' holds an index or a quoted key, then ']'"
                )
        else:
            raise ParseError(_excerpt(text, start), f"unexpected {char!r}")
    return Lookup(text[start:at], root, tuple(segments)), at


def _skip_spaces(text: str, at: int) -> int:
    while at < len(text) and text[at] == " ":
        at += 1
    return at


def _excerpt(text: str, start: int) -> str:
    """The expression as written, for a message: up to its ``}``, at most 80 characters."""
    end = text.find("}", start)
    piece = text[start : end + 1] if end != -1 else text[start:]
    return piece if len(piece) <= 80 else piece[:77] + "..."


# ── walking values ──────────────────────────────────────────────────────────────────────────


def _strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a JSON value and where it is (``where`` plus keys and indexes)."""
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, f"{where}[{index}]")


def lookups(value: Any, where: str) -> Iterator[tuple[str, Lookup]]:
    """Every expression in a JSON value's strings and where it is; ``ParseError`` on the
    first that does not parse."""
    for field, text in _strings(value, where):
        if _OPEN not in text:
            continue
        for piece in parse(text):
            if isinstance(piece, Lookup):
                yield field, piece


def check(value: Any, where: str, *, earlier_steps: Collection[str]) -> list[tuple[str, str]]:
    """Field errors, ``(field, message)``, for each expression in ``value`` that does not
    parse or does not name something a step can read: a root of the grammar, and among the
    steps only ``earlier_steps``, followed by ``.input``, ``.output`` or ``.status``."""
    problems: list[tuple[str, str]] = []
    for field, text in _strings(value, where):
        if _OPEN not in text:
            continue
        try:
            pieces = parse(text)
        except ParseError as error:
            problems.append((field, f"{error.expression} does not parse: {error.reason}"))
            continue
        for piece in pieces:
            if isinstance(piece, Lookup):
                reason = _unreachable(piece, earlier_steps)
                if reason is not None:
                    problems.append((field, f"{piece.source} {reason}"))
    return problems


def _unreachable(lookup: Lookup, earlier_steps: Collection[str]) -> str | None:
    """Why ``lookup`` cannot name what a step can read, or None."""
    segments = lookup.segments
    if lookup.root == "steps":
        if not segments or not isinstance(segments[0], str):
            return "names no step: write steps.<key>.output"
        key = segments[0]
        if key not in earlier_steps:
            return f"names the step {key!r}, which is not an earlier step"
        if len(segments) < 2 or segments[1] not in STEP_FIELDS:
            return f"reads a step's {', '.join(STEP_FIELDS)} only: write steps.{key}.output"
    if lookup.root == "run" and segments and segments[0] not in RUN_FIELDS:
        return f"reads the run's {', '.join(RUN_FIELDS)} only"
    return None


# ── evaluating ──────────────────────────────────────────────────────────────────────────────


def evaluate(value: Any, scope: Mapping[str, Any]) -> Any:
    """``value`` with the expressions in its strings resolved in ``scope`` (a mapping of the
    roots to JSON values); ``EvaluationError`` names the first lookup that finds nothing."""
    if isinstance(value, str):
        return _evaluate_text(value, scope)
    if isinstance(value, Mapping):
        # Keys in sorted order, so the first failure named is the same whatever order the
        # database kept them in (PostgreSQL's JSONB reorders them); the answer keeps theirs.
        done = {key: evaluate(value[key], scope) for key in sorted(value)}
        return {key: done[key] for key in value}
    if isinstance(value, list | tuple):
        return [evaluate(item, scope) for item in value]
    return value


def _evaluate_text(text: str, scope: Mapping[str, Any]) -> Any:
    if _OPEN not in text:
        return text
    try:
        pieces = parse(text)
    except ParseError as error:  # saved before the grammar: refused now
        raise EvaluationError(error.expression, f"does not parse: {error.reason}") from None
    if len(pieces) == 1 and isinstance(pieces[0], Lookup):
        return _resolve(pieces[0], scope)
    parts = []
    for piece in pieces:
        if isinstance(piece, Lookup):
            found = _resolve(piece, scope)
            parts.append(found if isinstance(found, str) else _json(found))
        else:
            parts.append(piece)
    return "".join(parts)


def _resolve(lookup: Lookup, scope: Mapping[str, Any]) -> Any:
    if lookup.root not in scope:
        raise EvaluationError(lookup.source, f"{lookup.root!r} is not available here")
    value = scope[lookup.root]
    walked = lookup.root
    for segment in lookup.segments:
        if isinstance(segment, int) and isinstance(value, list):
            if segment >= len(value):
                raise EvaluationError(
                    lookup.source, f"{walked} has {len(value)} items, no index {segment}"
                )
            value = value[segment]
            walked = f"{walked}[{segment}]"
        elif isinstance(segment, str) and isinstance(value, Mapping):
            if segment not in value:
                raise EvaluationError(lookup.source, f"{walked} has no key {segment!r}")
            value = value[segment]
            walked = f"{walked}.{segment}"
        else:
            raise EvaluationError(
                lookup.source,
                f"{walked} is {_kind(value)}, which has no {'index' if isinstance(segment, int) else 'key'} {segment!r}",
            )
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
