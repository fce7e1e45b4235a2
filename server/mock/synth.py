"""Deterministic values from JSON Schemas: what the mock answers when the spec has no example.

`Synthesizer.value(schema)` builds a small instance of a schema (JSON Schema 2020-12, `$ref`s
into the generated `schemas.json`) and checks it with the compiled validator. It honours types,
`const`/`enum`, formats, patterns, lengths and bounds, `multipleOf`, required and optional
properties, `additionalProperties`, `minProperties`, `prefixItems`, `uniqueItems`, `allOf`
(merged), `oneOf`/`anyOf` (the first branch that validates), recursion (optional parts are left
out below a small depth) and, for responses, leaves `writeOnly` properties out. A value that
does not validate is tried again without the schema's own examples and defaults, then with
required properties only; the same schema always gives the same value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from server.mock import regex
from server.runtime.schemas import CompiledSchema, SchemaBundle

FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "/example",
    "iri-reference": "/example",
    "uri-template": "/items/{id}",
    "json-pointer": "/example",
    "relative-json-pointer": "0",
    "regex": "^example$",
    "uuid": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
    "byte": "bW9jaw==",
    "binary": "mock",
    "password": "password1",
}
_OPTIONAL_DEPTH = 2  # optional properties and non-required array items only above this depth
_MAX_DEPTH = 16  # a chain of required references this deep is given up on
_SUBSCHEMA_KEYS = ("allOf", "oneOf", "anyOf")


@dataclass(frozen=True)
class _Options:
    examples: bool  # use the schema's own `examples`/`default`
    optional: bool  # include optional properties and items
    direction: str  # "response" leaves writeOnly properties out, "request" readOnly ones


_ATTEMPTS = (
    (True, True),
    (False, True),
    (False, False),
)


class Synthesizer:
    """Builds values for schemas of one generated package."""

    def __init__(self, bundle: SchemaBundle) -> None:
        self.bundle = bundle
        self._validators: dict[str, CompiledSchema] = {}

    def validator(self, schema: Any) -> CompiledSchema:
        """The compiled validator of `schema` (cached by its JSON text)."""
        text = json.dumps(schema, sort_keys=True, default=str)
        if text not in self._validators:
            root = schema if isinstance(schema, dict) else {"allOf": [schema]}
            self._validators[text] = self.bundle.compile(root)
        return self._validators[text]

    def is_valid(self, schema: Any, value: Any) -> bool:
        """Whether `value` is an instance of `schema`."""
        return self.validator(schema).is_valid(value)

    def value(self, schema: Any, direction: str = "response") -> Any:
        """A valid instance of `schema` when one can be found; the best attempt otherwise."""
        value: Any = None
        for examples, optional in _ATTEMPTS:
            options = _Options(examples, optional, direction)
            value = _Builder(self, options).build(schema, 0, 0, ())
            if self.is_valid(schema, value):
                return value
        return value


class _Builder:
    def __init__(self, synth: Synthesizer, options: _Options) -> None:
        self.synth = synth
        self.options = options
        self.bundle = synth.bundle

    # -- dispatch ---------------------------------------------------------------------------

    def build(self, schema: Any, depth: int, index: int, stack: tuple[str, ...]) -> Any:
        if schema is True or schema == {}:
            return "mock"
        if not isinstance(schema, Mapping) or depth > _MAX_DEPTH:
            return None
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = self.bundle.resolve({"$ref": ref})
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            stack = (*stack, ref)
            if target is schema or target.get("$ref") == ref:
                return "mock"
            schema = {"allOf": [target, rest]} if rest else target
            if not rest:
                return self.build(schema, depth, index, stack)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema and isinstance(schema["enum"], list) and schema["enum"]:
            values = schema["enum"]
            concrete = [v for v in values if v is not None] or values
            return concrete[index % len(concrete)]
        if self.options.examples:
            examples = schema.get("examples")
            if isinstance(examples, list) and examples and index == 0:
                return examples[0]
            if "default" in schema and index == 0:
                return schema["default"]
        if "allOf" in schema:
            return self.build(self.merged(schema, stack), depth, index, stack)
        for key in ("oneOf", "anyOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.choice(schema, key, branches, depth, index, stack)
        kind = _kind(schema)
        if kind == "object":
            return self.object(schema, depth, stack)
        if kind == "array":
            return self.array(schema, depth, stack)
        if kind in ("integer", "number"):
            return _number(schema, kind == "integer", index)
        if kind == "boolean":
            return index % 2 == 0
        if kind == "null":
            return None
        return _string(schema, index)

    def choice(
        self,
        schema: Mapping[str, Any],
        key: str,
        branches: list[Any],
        depth: int,
        index: int,
        stack: tuple[str, ...],
    ) -> Any:
        rest = {k: v for k, v in schema.items() if k != key}
        candidates = []
        for variant in range(index, index + 3):  # other values when branches overlap
            for branch in _ordered(branches):
                combined = {"allOf": [rest, branch]} if rest else branch
                candidate = self.build(combined, depth, variant, stack)
                if self.synth.is_valid(schema, candidate):
                    return candidate
                candidates.append(candidate)
        return candidates[0]

    def merged(self, schema: Mapping[str, Any], stack: tuple[str, ...]) -> dict[str, Any]:
        """One schema from an `allOf` and its siblings (properties and required combined)."""
        result: dict[str, Any] = {}
        parts = [{k: v for k, v in schema.items() if k != "allOf"}, *schema["allOf"]]
        for part in parts:
            part = self.bundle.resolve(part) if isinstance(part, Mapping) else {}
            if "allOf" in part:
                part = self.merged(part, stack)
            for key, value in part.items():
                if key == "properties" and isinstance(value, Mapping):
                    props = result.setdefault("properties", {})
                    for name, sub in value.items():
                        props[name] = {"allOf": [props[name], sub]} if name in props else sub
                elif key == "required" and isinstance(value, list):
                    result["required"] = [*result.get("required", []), *value]
                elif key in ("minimum", "exclusiveMinimum", "minLength", "minItems"):
                    result[key] = max(result.get(key, value), value)
                elif key in ("maximum", "exclusiveMaximum", "maxLength", "maxItems"):
                    result[key] = min(result.get(key, value), value)
                elif key == "type" and "type" in result:
                    result["type"] = _intersect(result["type"], value)
                elif key == "$ref":
                    continue
                else:
                    result.setdefault(key, value)
        return result

    # -- containers -------------------------------------------------------------------------

    def object(self, schema: Mapping[str, Any], depth: int, stack: tuple[str, ...]) -> Any:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = [r for r in schema.get("required", []) if isinstance(r, str)]
        dependent = schema.get("dependentRequired")
        dependent = dependent if isinstance(dependent, Mapping) else {}
        result: dict[str, Any] = {}
        chosen = list(dict.fromkeys(required))
        if self.options.optional and depth < _OPTIONAL_DEPTH:
            for name, sub in properties.items():
                if name not in chosen and not self.excluded(sub) and not _loops(sub, stack):
                    chosen.append(name)
        for name in list(chosen):
            extra = dependent.get(name)
            if isinstance(extra, list):
                chosen += [d for d in extra if isinstance(d, str) and d not in chosen]
        maximum = schema.get("maxProperties")
        if isinstance(maximum, int):
            optional = [n for n in chosen if n not in required]
            keep = max(maximum - len(required), 0)
            chosen = [n for n in chosen if n in required or n in optional[:keep]]
        for name in chosen:
            sub = properties.get(name, self.additional(schema, name))
            result[name] = self.build(sub, depth + 1, 0, stack)
        minimum = schema.get("minProperties")
        if isinstance(minimum, int):
            for i in range(minimum):
                if len(result) >= minimum:
                    break
                key = self.extra_key(schema, i)
                if key is not None and key not in result:
                    result[key] = self.build(self.additional(schema, key), depth + 1, i, stack)
        return result

    def additional(self, schema: Mapping[str, Any], name: str) -> Any:
        for pattern, sub in (schema.get("patternProperties") or {}).items():
            matched = regex.example(pattern)
            if matched is not None and matched == name:
                return sub
        extra = schema.get("additionalProperties")
        return extra if isinstance(extra, Mapping) else {}

    def extra_key(self, schema: Mapping[str, Any], index: int) -> str | None:
        if schema.get("additionalProperties") is not False:
            return f"key{index + 1}"
        for pattern in schema.get("patternProperties") or {}:
            matched = regex.example(pattern, index)
            if matched is not None:
                return matched
        return None

    def excluded(self, schema: Any) -> bool:
        """A property this direction never carries."""
        flag = "writeOnly" if self.options.direction == "response" else "readOnly"
        if not isinstance(schema, Mapping):
            return False
        return schema.get(flag) is True or self.bundle.resolve(schema).get(flag) is True

    def array(self, schema: Mapping[str, Any], depth: int, stack: tuple[str, ...]) -> list[Any]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get("items", {})
        low = schema.get("minItems", 0)
        high = schema.get("maxItems")
        wanted = (
            1 if self.options.optional and depth < _OPTIONAL_DEPTH and items is not False else 0
        )
        count = max(low if isinstance(low, int) else 0, wanted, len(prefix) if low else 0)
        if isinstance(high, int):
            count = min(count, high)
        if _loops(items, stack) and not low:
            count = min(count, len(prefix))
        result: list[Any] = []
        for i in range(count):
            sub = prefix[i] if i < len(prefix) else items
            result.append(self.build(sub, depth + 1, i, stack))
        contains = schema.get("contains")
        room = not isinstance(high, int) or len(result) < high
        if (
            isinstance(contains, Mapping)
            and room
            and not any(self.synth.is_valid(contains, v) for v in result)
        ):
            result.append(self.build(contains, depth + 1, 0, stack))
        if schema.get("uniqueItems") is True:
            unique: list[Any] = []
            for value in result:
                if value not in unique:
                    unique.append(value)
            result = unique
        return result


def _ordered(branches: list[Any]) -> list[Any]:
    """Branches, the `null` alternative last: a real value says more."""
    return sorted(branches, key=lambda b: isinstance(b, Mapping) and b.get("type") == "null")


def _loops(schema: Any, stack: tuple[str, ...]) -> bool:
    """Whether `schema` leads straight back to a reference being expanded."""
    if not isinstance(schema, Mapping):
        return False
    if schema.get("$ref") in stack:
        return True
    items = schema.get("items")
    if isinstance(items, Mapping) and items.get("$ref") in stack:
        return True
    return any(
        isinstance(b, Mapping) and b.get("$ref") in stack
        for key in _SUBSCHEMA_KEYS
        for b in (schema.get(key) or [])
    )


def _kind(schema: Mapping[str, Any]) -> str:
    declared = schema.get("type")
    if isinstance(declared, list):
        concrete = [t for t in declared if t != "null"]
        return str(concrete[0]) if concrete else "null"
    if isinstance(declared, str):
        return declared
    if any(k in schema for k in ("properties", "required", "additionalProperties")):
        return "object"
    if any(k in schema for k in ("items", "prefixItems", "minItems", "maxItems")):
        return "array"
    if any(k in schema for k in ("minimum", "maximum", "multipleOf", "exclusiveMinimum")):
        return "number"
    return "string"


def _intersect(first: Any, second: Any) -> Any:
    a = set(first) if isinstance(first, list) else {first}
    b = set(second) if isinstance(second, list) else {second}
    if "number" in a and "integer" in b:
        a.add("integer")
    if "number" in b and "integer" in a:
        b.add("integer")
    both = sorted(a & b)
    return both[0] if len(both) == 1 else (both or first)


def _string(schema: Mapping[str, Any], index: int) -> str:
    low = schema.get("minLength", 0)
    low = low if isinstance(low, int) else 0
    high = schema.get("maxLength")
    high = high if isinstance(high, int) else None
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        for extra in range(0, 64):
            text = regex.example(pattern, extra + index)
            if text is None:
                break
            if len(text) < low and not regex.anchored_at_end(pattern):
                text = text + "a" * (low - len(text))
            if len(text) >= low and (high is None or len(text) <= high):
                return text
            if high is not None and len(text) > high:
                break
    text = FORMATS.get(str(schema.get("format")), "mock")
    if index and str(schema.get("format")) not in FORMATS:
        text = f"{text}{index}"
    if len(text) < low:
        text = text + "x" * (low - len(text))
    if high is not None and len(text) > high:
        text = text[:high]
    return text


def _number(schema: Mapping[str, Any], integer: bool, index: int) -> int | float:
    low = _bound(schema, "minimum", "exclusiveMinimum", integer, +1)
    high = _bound(schema, "maximum", "exclusiveMaximum", integer, -1)
    step = schema.get("multipleOf")
    if low is not None:
        value: float = low
    elif high is not None:
        value = min(high, 1)
    else:
        value = 1
    value += index if integer else index / 2
    if high is not None and value > high:
        value = high
    if isinstance(step, (int, float)) and step > 0:
        value = math.ceil(value / step) * step
        if high is not None and value > high:
            value = math.floor(high / step) * step
    if integer:
        return math.ceil(value) if low is not None else int(value)
    return int(value) if float(value).is_integer() else value


def _bound(
    schema: Mapping[str, Any], inclusive: str, exclusive: str, integer: bool, sign: int
) -> float | None:
    candidates: list[float] = []
    value = schema.get(inclusive)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        candidates.append(value)
    strict = schema.get(exclusive)
    if isinstance(strict, (int, float)) and not isinstance(strict, bool):
        candidates.append(strict + sign * (1 if integer else _nudge(schema, strict, sign)))
    if not candidates:
        return None
    return max(candidates) if sign > 0 else min(candidates)


def _nudge(schema: Mapping[str, Any], strict: float, sign: int) -> float:
    """How far inside an exclusive bound a number goes: half the room, at most 1."""
    other = schema.get("maximum" if sign > 0 else "minimum")
    if isinstance(other, (int, float)) and not isinstance(other, bool):
        room = abs(other - strict)
        return min(1.0, room / 2) if room else 0.5
    return 1.0
