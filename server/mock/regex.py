"""A string that matches a regular expression: the shortest one, or a longer one on request.

Walks the pattern as Python's own parser reads it (`re._parser`), taking the first branch of
every alternation and the least repetition allowed (plus `extra` where more is allowed).
ECMA-262 patterns that Python cannot parse give None; the caller falls back to plain text.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

# The parser lives in private modules of `re` (3.11+); typeshed does not describe them.
_c: Any = importlib.import_module("re._constants")
_p: Any = importlib.import_module("re._parser")

_CANDIDATES = "a0A_-. z9Z"
_CATEGORY = {
    _c.CATEGORY_DIGIT: "0",
    _c.CATEGORY_NOT_DIGIT: "a",
    _c.CATEGORY_SPACE: " ",
    _c.CATEGORY_NOT_SPACE: "a",
    _c.CATEGORY_WORD: "a",
    _c.CATEGORY_NOT_WORD: "-",
}


def example(pattern: str, extra: int = 0) -> str | None:
    """A string `re.search(pattern, ...)` accepts, or None when the pattern is beyond us."""
    try:
        parsed = _p.parse(pattern)
        text = _Writer(extra).write(parsed)
    except (re.error, RecursionError, ValueError, TypeError, KeyError, IndexError):
        return None
    try:
        return text if re.search(pattern, text) else None
    except re.error:
        return None


def anchored_at_end(pattern: str) -> bool:
    """True when the pattern ends in `$` (padding at the end would break the match)."""
    return pattern.rstrip().endswith("$") and not pattern.rstrip().endswith("\\$")


def anchored_at_start(pattern: str) -> bool:
    """True when the pattern starts with `^`."""
    return pattern.lstrip().startswith("^")


class _Writer:
    def __init__(self, extra: int) -> None:
        self.extra = extra
        self.groups: dict[int, str] = {}

    def write(self, items: Any) -> str:
        return "".join(self.item(op, arg) for op, arg in items)

    def item(self, op: Any, arg: Any) -> str:
        if op is _c.LITERAL:
            return chr(arg)
        if op is _c.NOT_LITERAL:
            return next(ch for ch in _CANDIDATES if ord(ch) != arg)
        if op is _c.ANY:
            return "a"
        if op is _c.IN:
            return self.one_of(arg)
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, getattr(_c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = arg
            count = low if high == _c.MAXREPEAT else min(high, low + self.extra)
            if high == _c.MAXREPEAT:
                count = low + self.extra
            return "".join(self.write(sub) for _ in range(count))
        if op is _c.SUBPATTERN:
            group, _, _, sub = arg
            text = self.write(sub)
            if group is not None:
                self.groups[group] = text
            return text
        if op is _c.BRANCH:
            _, alternatives = arg
            return self.write(alternatives[0])
        if op is _c.GROUPREF:
            return self.groups.get(arg, "")
        if op is _c.CATEGORY:
            return _CATEGORY.get(arg, "a")
        if op in (_c.AT, _c.ASSERT, _c.ASSERT_NOT):
            return ""
        if op is getattr(_c, "ATOMIC_GROUP", None):
            return self.write(arg)
        raise ValueError(f"unsupported regex construct {op}")

    def one_of(self, items: Any) -> str:
        negated = any(op is _c.NEGATE for op, _ in items)
        allowed = [(op, arg) for op, arg in items if op is not _c.NEGATE]
        if not negated:
            op, arg = allowed[0]
            if op is _c.LITERAL:
                return chr(arg)
            if op is _c.RANGE:
                return chr(arg[0])
            if op is _c.CATEGORY:
                return _CATEGORY.get(arg, "a")
            raise ValueError(f"unsupported class member {op}")
        for candidate in _CANDIDATES:
            if not any(_member(candidate, op, arg) for op, arg in allowed):
                return candidate
        raise ValueError("no candidate outside the negated class")


def _member(ch: str, op: Any, arg: Any) -> bool:
    if op is _c.LITERAL:
        return bool(ord(ch) == arg)
    if op is _c.RANGE:
        return bool(arg[0] <= ord(ch) <= arg[1])
    if op is _c.CATEGORY:
        return {
            _c.CATEGORY_DIGIT: ch.isdigit(),
            _c.CATEGORY_NOT_DIGIT: not ch.isdigit(),
            _c.CATEGORY_SPACE: ch.isspace(),
            _c.CATEGORY_NOT_SPACE: not ch.isspace(),
            _c.CATEGORY_WORD: ch.isalnum() or ch == "_",
            _c.CATEGORY_NOT_WORD: not (ch.isalnum() or ch == "_"),
        }.get(arg, False)
    return False
