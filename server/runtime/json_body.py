"""The one decoder of JSON request bodies: UTF-8 I-JSON (RFC 7493) or a 400/415 problem.

Refused, each with its own message: bytes that are not UTF-8 (an encoded surrogate among them),
text that is not JSON (NaN and Infinity included), a member name given twice in one object (the
last one would silently win), nesting deeper than ``MAX_DEPTH`` (never a ``RecursionError``), a
string or member name holding an unpaired surrogate or a NUL (PostgreSQL text cannot store NUL),
and a ``charset`` other than UTF-8.

The valid path stays one pass of the standard library's C decoder: duplicates are caught by the
hook that builds each object, and the other checks only walk the value when a cheap scan of the
bytes says they might fail (a ``\\u`` escape that can make a NUL or a surrogate; more brackets
than the depth limit).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from werkzeug.http import parse_options_header

from server.runtime.errors import BadRequest, FieldError, UnsupportedMediaType

MAX_DEPTH = 64  # levels of arrays and objects, the outermost one included

# Only an escape can put a NUL or a lone surrogate in a decoded string: raw control characters
# are not JSON, and UTF-8 cannot encode a surrogate.
_RISKY_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
_UTF8_NAMES = frozenset({"utf-8", "utf8"})


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Build one JSON object, refusing a member name given twice."""
    built = dict(pairs)
    if len(built) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return built


def _no_constant(name: str) -> Any:
    # Python's json module reads NaN, Infinity and -Infinity; JSON (RFC 8259) has no such values.
    raise ValueError(f"{name} is not JSON")


# ``json.loads(text, object_pairs_hook=..., parse_constant=...)`` without a decoder per call.
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_constant=_no_constant)


def decode_json_body(data: bytes) -> Any:
    """The value of the JSON text ``data``, or ``BadRequest`` saying what is wrong with it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _refused("The body is not valid UTF-8.", "is not UTF-8 text") from None
    try:
        value = _DECODER.decode(text)
    except _DuplicateKey as exc:
        raise _refused(
            "The body is not valid JSON text.",
            f"the member name {_shown(exc.key)} is given more than once",
        ) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError:
        raise _refused("The body is not valid JSON.", "malformed JSON") from None
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _deeper_than(value, MAX_DEPTH):
        raise _too_deep()
    if _RISKY_ESCAPE.search(data):
        problem = _string_problem(value)
        if problem is not None:
            raise _refused("The body is not valid JSON text.", problem)
    return value


def check_json_charset(content_type: str) -> None:
    """``UnsupportedMediaType`` unless ``content_type`` names UTF-8 or no charset at all."""
    if ";" in content_type:
        charset = _charset(content_type)
        if charset is not None and charset not in _UTF8_NAMES:
            raise UnsupportedMediaType(
                f"JSON bodies are UTF-8; charset={charset[:40]} is not accepted."
            )


@lru_cache(maxsize=64)  # clients send a handful of distinct Content-Type values
def _charset(content_type: str) -> str | None:
    charset = parse_options_header(content_type)[1].get("charset")
    return charset.strip().lower() if charset is not None else None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects in ``value`` nest more than ``limit`` levels deep."""
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False


def _string_problem(value: Any) -> str | None:
    """What is wrong with the first string (or member name) that holds a NUL or an unpaired
    surrogate, or ``None``."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                return "a string holds a NUL character"
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds an unpaired surrogate (RFC 7493)"
        elif isinstance(node, dict):
            stack.extend(node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return None


def _shown(key: str) -> str:
    """A member name as a message may quote it: printable and bounded."""
    shown = key.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")
    return repr(shown if len(shown) <= 60 else shown[:57] + "...")


def _too_deep() -> BadRequest:
    return _refused("The body is not valid JSON text.", f"nests deeper than {MAX_DEPTH} levels")


def _refused(detail: str, message: str) -> BadRequest:
    return BadRequest(detail, errors=[FieldError("body", message)])
