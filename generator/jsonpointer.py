"""JSON Pointer (RFC 6901) helpers: the one way locations inside a spec are named."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Part = str | int


def escape(part: Part) -> str:
    """Escape one reference token (`~` → `~0`, `/` → `~1`)."""
    return str(part).replace("~", "~0").replace("/", "~1")


def unescape(token: str) -> str:
    """Undo `escape` for one reference token."""
    return token.replace("~1", "/").replace("~0", "~")


def join(parts: Iterable[Part]) -> str:
    """Build a pointer from its parts; no parts is the root pointer `""`."""
    return "".join("/" + escape(part) for part in parts)


def child(pointer: str, part: Part) -> str:
    """The pointer one level below `pointer`."""
    return pointer + "/" + escape(part)


def split(pointer: str) -> list[str]:
    """The unescaped reference tokens of `pointer` (root gives `[]`)."""
    if not pointer:
        return []
    return [unescape(token) for token in pointer.lstrip("/").split("/")]


def parent(pointer: str) -> str:
    """The pointer one level up; the root is its own parent."""
    return pointer.rsplit("/", 1)[0] if pointer else ""


def resolve(document: Any, pointer: str) -> Any:
    """The node `pointer` names inside `document`; `LookupError` when there is none."""
    node = document
    for token in split(pointer):
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            raise LookupError(pointer)
    return node
