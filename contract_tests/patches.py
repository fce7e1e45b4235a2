"""The partial-update probe: a ``PATCH`` changes what it is sent and nothing else.

For every ``PATCH`` with a JSON object body (``rules.partial_updates``), on a fresh resource:

1. set every field the body schema has (nested ones included) to a new value, so that no field
   still holds a default a faulty update could fall back to;
2. change one field at a time: the read-back (a ``GET`` on the same path, else the answer) has
   the new value there and every other field the body can set as before (the convention's
   "omitted fields stay unchanged"; what only the server sets, ``updated_at``, a status or a
   flag derived from the fields, is the server's to change);
3. send an explicit ``null`` to each nullable field: the field reads back ``null``.

Fields the answer never shows (a password) cannot be read back and are left out. New values
come from the field's schema: another enum value, the other boolean, a neighbouring integer, a
fresh string of its ``format`` (a URI, an email, a date-time…) or that fits its pattern and
length.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from contract_tests import spec
from contract_tests.probing import Probe, reader_of
from contract_tests.runner import Finding
from contract_tests.world import Request, World
from generated.operations import Operation

Leaf = tuple[str, ...]  # a field's place in the body: ("settings", "max_members")
VOLATILE = frozenset({"updated_at"})  # fields any successful update may change


def partial_update(world: World, schema: Any, operation_id: str) -> list[Finding]:
    """One field at a time, the rest unchanged; explicit nulls clear nullable fields."""
    probe = Probe(world, schema, "partial_update")
    op = spec.by_id(operation_id)
    assert world.scope is not None
    request = world.request_for(op, world.allowed_caller(op, world.scope))
    body_schema = world.doc.request_schema(op)
    patch = _Patch(probe, op, request)
    current = patch.read()
    if current is None:
        return probe.findings
    patch.root = _root_of(current, body_schema.get("properties") or {})
    patch.settable = [leaf for leaf, _ in _leaves(world, body_schema)]
    leaves = [(leaf, s) for leaf, s in _leaves(world, body_schema) if _has(patch.at(current), leaf)]
    everything = {leaf: _new_value(world, s, _get(patch.at(current), leaf)) for leaf, s in leaves}
    current = patch.apply(everything, current) or current
    for leaf, leaf_schema in leaves:
        value = _new_value(world, leaf_schema, _get(patch.at(current), leaf))
        current = patch.apply({leaf: value}, current) or current
    for leaf, leaf_schema in leaves:
        if _nullable(world, leaf_schema):
            current = patch.apply({leaf: None}, current) or current
    return probe.findings


class _Patch:
    """Sends the PATCH and reads the resource back the same way each time."""

    def __init__(self, probe: Probe, op: Operation, request: Request) -> None:
        self.probe, self.op, self.request = probe, op, request
        self.reader = reader_of(op)
        self.root: Leaf = ()  # where the body's fields are in the read-back
        self.settable: list[Leaf] = []  # the fields the body can set, under ``root``

    def at(self, document: Any) -> Any:
        return _get(document, self.root)

    def read(self) -> Any:
        """The resource: by its GET, else by the answer to the example PATCH."""
        if self.reader is None:
            return self._send(dict(self.request.body or {}))
        response = self.probe.send(
            self.reader, self.request.caller, self.request.scope, self.request.path
        )
        return response.json() if response.status_code == 200 else None

    def _send(self, body: Mapping[str, Any]) -> Any:
        response = self.probe.send(
            self.op, self.request.caller, self.request.scope, self.request.path, body
        )
        if not self.probe.succeeded(response, self.op, f"partial update {body}"):
            return None
        return response.json()

    def apply(self, values: Mapping[Leaf, Any], before: Any) -> Any:
        """Send ``values``; the read-back holds them, and everything else of ``before``."""
        answer = self._send(_nest(values))
        after = answer if answer is None or self.reader is None else self.read()
        if after is None:
            return None
        sent_only = sorted(".".join(leaf) for leaf in values)
        for leaf, value in values.items():
            if _get(self.at(after), leaf) != value:
                self.probe.fail(
                    self.op,
                    f"sent {'.'.join(leaf)}={value!r}, read back {_get(self.at(after), leaf)!r}",
                )
        changed = {(*self.root, *leaf) for leaf in values}
        settable = [(*self.root, *leaf) for leaf in self.settable]
        for place, value in _flat(before).items():
            if any(place[: len(c)] == c for c in changed) or VOLATILE & set(place):
                continue
            if not any(place[: len(s)] == s or s[: len(place)] == place for s in settable):
                continue  # only the server sets it
            if _get(after, place) != value:
                self.probe.fail(
                    self.op,
                    f"sent only {sent_only}, but {'.'.join(place)} changed from {value!r} to "
                    f"{_get(after, place)!r}",
                )
        return after


# ── schemas and documents ─────────────────────────────────────────────────────────────────────


def _leaves(world: World, schema: Mapping[str, Any], at: Leaf = ()) -> Iterator[tuple[Leaf, Any]]:
    """Every field of an object body, nested objects descended into."""
    for name, prop in (schema.get("properties") or {}).items():
        resolved = world.doc.resolve(prop)
        if isinstance(resolved, Mapping) and resolved.get("properties"):
            yield from _leaves(world, resolved, (*at, name))
        else:
            yield (*at, name), prop


def _root_of(document: Any, body: Mapping[str, Any]) -> Leaf:
    """Where the body's fields live in the answer: at the top, or in one member (``user``)."""
    if not isinstance(document, dict) or any(k in document for k in body):
        return ()
    for key, value in document.items():
        if isinstance(value, dict) and any(k in value for k in body):
            return (key,)
    return ()


def _has(document: Any, leaf: Leaf) -> bool:
    for part in leaf:
        if not isinstance(document, dict) or part not in document:
            return False
        document = document[part]
    return True


def _get(document: Any, leaf: Leaf) -> Any:
    for part in leaf:
        document = document.get(part) if isinstance(document, dict) else None
    return document


def _nest(values: Mapping[Leaf, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for leaf, value in values.items():
        node = body
        for part in leaf[:-1]:
            node = node.setdefault(part, {})
        node[leaf[-1]] = value
    return body


def _flat(document: Any, at: Leaf = ()) -> dict[Leaf, Any]:
    if not isinstance(document, dict):
        return {at: document}
    result: dict[Leaf, Any] = {}
    for key, value in document.items():
        result.update(_flat(value, (*at, key)))
    return result


def _branches(world: World, schema: Any) -> list[Mapping[str, Any]]:
    schema = world.doc.resolve(schema)
    parts = schema.get("anyOf") or schema.get("oneOf")
    if parts:
        return [b for part in parts for b in _branches(world, part)]
    merged = dict(schema)
    if "$ref" in merged:
        merged.update(world.doc.resolve({"$ref": merged.pop("$ref")}))
    return [merged]


def _nullable(world: World, schema: Any) -> bool:
    return any(_types(b) & {"null"} for b in _branches(world, schema))


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return set(map(str, kind))
    return {str(kind)} if kind else set()


def _new_value(world: World, schema: Any, current: Any) -> Any:
    """A value the field's schema allows that differs from ``current``."""
    for branch in _branches(world, schema):
        types = _types(branch) - {"null"}
        if branch.get("enum"):
            others = [v for v in branch["enum"] if v != current and v is not None]
            if others:
                return others[0]
        elif "boolean" in types:
            return not current
        elif types & {"integer", "number"}:
            low, high = branch.get("minimum", 0), branch.get("maximum", 1 << 30)
            value = current + 1 if isinstance(current, int) else low
            return value if value <= high else current - 1
        elif "string" in types:
            return new_string(world, branch)
    return current


def new_string(world: World, schema: Mapping[str, Any]) -> str:
    """A fresh value of a string schema: its ``format`` first, then a candidate that fits its
    ``pattern`` and length (a slug, the same without punctuation, the schema's example with
    new digits); the first candidate when none fits, which the server then refuses, visibly."""
    number = next(world._counter)
    by_format = _formatted(world, str(schema.get("format") or ""), number)
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 64))
    if by_format is not None:
        return by_format
    tag = world.unique("patched").lower()
    candidates = [tag, re.sub(r"[^a-z0-9]", "", tag) or "patched"]
    examples = [e for e in (schema.get("examples") or ()) if isinstance(e, str)]
    candidates += [_renumbered(e, number) for e in examples]
    fitted = [c.ljust(low, "x")[:high] for c in candidates]
    pattern = schema.get("pattern")
    for value in fitted:
        if not pattern or re.search(str(pattern), value):
            return value
    return fitted[0]


def _formatted(world: World, form: str, number: int) -> str | None:
    """A fresh value of a string ``format`` the suite knows (None for any other)."""
    moment = datetime.now(UTC) + timedelta(days=30, seconds=number)
    if form == "date-time":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if form == "date":
        return (moment + timedelta(days=number)).strftime("%Y-%m-%d")
    if form == "email":
        return world.unique_email("patched")
    if form in ("uri", "url", "iri"):
        return f"https://patched-{world.run}-{number}.example.com/v1"
    if form in ("hostname", "idn-hostname"):
        return f"patched-{world.run}-{number}.example.com"
    if form == "uuid":
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{world.run}-{number}"))
    return None


def _renumbered(example: str, number: int) -> str:
    """``example`` with its digits replaced by ``number``'s (repeated), the rest kept."""
    digits = str(number)
    found = iter(range(len(example)))
    return re.sub(r"[0-9]", lambda _: digits[next(found) % len(digits)], example)
