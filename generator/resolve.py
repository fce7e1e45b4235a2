"""The one place `$ref`s are resolved: local references inside the spec document (`bundle` has
already brought in what other files held)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from . import jsonpointer

# Keys whose values are example or literal data, where a "$ref" key is not a reference.
_LITERAL_KEYS = frozenset({"example", "default", "enum", "const"})
# Keys whose values map names to objects: there `default` or `x-foo` is a name, not a keyword.
_NAME_MAPS = frozenset(
    {
        "$defs",
        "callbacks",
        "content",
        "definitions",
        "dependentSchemas",
        "encoding",
        "examples",
        "headers",
        "links",
        "paths",
        "parameters",
        "pathItems",
        "patternProperties",
        "properties",
        "requestBodies",
        "responses",
        "schemas",
        "securitySchemes",
        "webhooks",
    }
)


class RefError(Exception):
    """A `$ref` that does not lead to a value in this document."""


def ref_pointer(ref: str) -> str:
    """The JSON pointer named by a local reference (`#/a/b` → `/a/b`)."""
    if not ref.startswith("#"):
        raise RefError(f"$ref {ref!r} names another file, which could not be read")
    fragment = unquote(ref[1:])
    if fragment and not fragment.startswith("/"):
        raise RefError(f"$ref {ref!r} is not a JSON pointer")
    return fragment


def is_ref(value: Any) -> bool:
    """True for a Reference Object (a mapping with a string `$ref`)."""
    return isinstance(value, dict) and isinstance(value.get("$ref"), str)


class Resolver:
    """Looks references up in one document, following chains, remembering every answer."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self._memo: dict[str, tuple[Any, str]] = {}

    def lookup(self, ref: str) -> tuple[Any, str]:
        """The value `ref` names after following any chain of references, and its pointer."""
        if ref in self._memo:
            return self._memo[ref]
        seen: list[str] = []
        current = ref
        while True:
            pointer = ref_pointer(current)
            if pointer in seen:
                raise RefError(f"$ref {ref!r} is circular")
            seen.append(pointer)
            value = self._get(pointer, current)
            if not is_ref(value):
                break
            current = value["$ref"]
        self._memo[ref] = (value, pointer)
        return value, pointer

    def deref(self, value: Any, pointer: str) -> tuple[Any, str]:
        """`value` itself when it is not a reference, else what it refers to; with its pointer."""
        if is_ref(value):
            return self.lookup(value["$ref"])
        return value, pointer

    def _get(self, pointer: str, ref: str) -> Any:
        try:
            return jsonpointer.resolve(self.document, pointer)
        except LookupError:
            raise RefError(
                f"$ref {ref!r} does not resolve: no {pointer!r} in the document"
            ) from None


def iter_refs(node: Any, pointer: str = "") -> Iterator[tuple[str, str]]:
    """Every `$ref` in the document (or in its part `node` at `pointer`) as (pointer of the
    `$ref` member, reference), in order."""
    path: list[str] = []  # the keys from `node` down: a pointer is only made for a `$ref`

    def walk(node: Any, is_name_map: bool) -> Iterator[tuple[str, str]]:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not is_name_map:
                yield pointer + jsonpointer.join([*path, "$ref"]), ref
            for key, value in node.items():
                if is_name_map or _holds_refs(key, value):
                    path.append(key)
                    yield from walk(value, not is_name_map and key in _NAME_MAPS)
                    path.pop()
        elif isinstance(node, list):
            for index, item in enumerate(node):
                if isinstance(item, (dict, list)):
                    path.append(str(index))
                    yield from walk(item, False)
                    path.pop()

    return walk(node, False)


def _holds_refs(key: str, value: Any) -> bool:
    if key in _LITERAL_KEYS or key.startswith("x-") or key == "$ref":
        return False
    # a schema's `examples` is a list of instances; a media type's is a map of Example Objects
    return not (key == "examples" and isinstance(value, list))


def contains_key(document: Any, key: str) -> bool:
    """True when any mapping anywhere in the document has `key`."""
    stack = [document]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if key in node:
                return True
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False
