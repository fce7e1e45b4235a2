"""A spec as a shared part and one unit per path item, each with a digest of its content.

Everything the generator works out about an operation depends on its path item and on the
shared part (components, security, servers…), never on another path item, except through a
`$ref` into `#/paths`, which `references_paths` finds (then nothing per unit is reused). So a
result computed for a unit can be kept under the digests of the unit and of the shared part.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from . import jsonpointer
from .conventions import CONVENTIONS_KEY, MIN_ROLE_KEY
from .walk import HTTP_METHODS

# How a member named `x-gantry-min-role` looks in `json.dumps` text; inside a string value its
# quotes would be escaped, so finding this means the key is used somewhere.
_MIN_ROLE_MEMBER = json.dumps({MIN_ROLE_KEY: 0})[1:-2]


@dataclass(frozen=True)
class Unit:
    """One path item."""

    path: str
    value: Any
    digest: str  # of the path and its value
    bodies: str  # digest of what `prepare` reads of it: method, operationId, bodies, responses
    uses_min_role: bool

    @property
    def pointer(self) -> str:
        """`/paths/~1pets`."""
        return jsonpointer.child("/paths", self.path)


@dataclass(frozen=True)
class Units:
    """The shared part of the document and its path items, sorted by path (as the operation
    table is)."""

    shared: dict[str, Any]  # the document with `paths` emptied (when it is a mapping)
    shared_digest: str
    units: tuple[Unit, ...]
    profile: bool  # the Gantry conventions apply (see `conventions.gantry_profile`)
    # False when the text cannot hold a `nullable` key (no such word, and no escapes that
    # could spell it): the walk that looks for one can be skipped.
    may_use_nullable: bool = True

    def document(self, units: tuple[Unit, ...] | list[Unit]) -> dict[str, Any]:
        """The shared part with only the given path items: enough to work on those."""
        if "paths" not in self.shared:
            return self.shared
        return {**self.shared, "paths": {unit.path: unit.value for unit in units}}

    def digest(self, *parts: str) -> str:
        """A digest of the shared part and `parts`."""
        return _digest(self.shared_digest, *parts)


Facts = dict[str, tuple[str, bool]]  # digest -> (bodies digest, uses x-gantry-min-role)


def split(
    document: dict[str, Any],
    *,
    digests: dict[tuple[str, str], str] | None = None,
    facts: Facts | None = None,
    text: str | None = None,
) -> Units:
    """The shared part and the units of `document`.

    `digests` are the loader's digests of the text of each piece, when it read the document
    piece by piece: they stand for the values, which then need not be serialised to be
    compared. `facts` keeps, by digest, what `split` had to work out of a value's content; it
    is updated. `text` is the document's text, if there is one.
    """
    facts = facts if facts is not None else {}
    paths = document.get("paths")
    if not isinstance(paths, dict):
        digests = None  # `paths` itself is then part of the shared part
    shared = {**document, "paths": {}} if isinstance(paths, dict) else document
    if digests is not None:
        top = [f"{key}\0{digest}" for (where, key), digest in digests.items() if not where]
        shared_digest = _digest("pieces", *top)
    else:
        shared_digest = _digest("json", _json(shared))
    _, shared_profile = _facts(shared_digest, shared, facts, shared=True)
    units = []
    items = paths if isinstance(paths, dict) else {}
    for path in sorted(items):
        value = items[path]
        piece = digests.get(("paths", path)) if digests is not None else None
        digest = _digest("piece", path, piece) if piece else _digest("json", _json([path, value]))
        bodies, uses_min_role = _facts(digest, value, facts, shared=False)
        units.append(Unit(path, value, digest, bodies, uses_min_role))
    opted_in = shared.get(CONVENTIONS_KEY) is True
    profile = opted_in or shared_profile or any(unit.uses_min_role for unit in units)
    nullable = text is None or "nullable" in text or "\\" in text
    return Units(shared, shared_digest, tuple(units), profile, nullable)


def _facts(digest: str, value: Any, facts: Facts, *, shared: bool) -> tuple[str, bool]:
    if digest not in facts:
        text = _json(value)
        bodies = "" if shared else _bodies_digest(value)
        facts[digest] = (bodies, _MIN_ROLE_MEMBER in text)
    return facts[digest]


def _bodies_digest(path_item: Any) -> str:
    if not isinstance(path_item, dict):
        return _digest(_json(path_item))
    read = [
        [
            method,
            operation.get("operationId"),
            operation.get("requestBody"),
            operation.get("responses"),
        ]
        for method in HTTP_METHODS
        if isinstance(operation := path_item.get(method), dict)
    ]
    return _digest(_json([path_item.get("$ref"), read]))


def references_paths(ref: str) -> bool:
    """A `$ref` into another path item."""
    return ref.startswith("#/paths")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=repr)


def _digest(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()
