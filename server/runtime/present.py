"""Responses shaped by the spec: a handler returns domain values, the documented schema picks
the fields.

``Presenter.shape(schema)`` compiles, once per operation and status, a function that turns a
handler's value into the documented JSON shape: for each property of an object schema it reads
the value's attribute (or mapping key) of that name, recursing through ``$ref``, ``allOf``,
arrays and nullable branches; an absent value takes the schema's ``default``. So a storage row
is answered as its schema says with no hand-written field list, and a field the schema does not
document is never sent. A model class may rename what it cannot call by the spec's name
(``api_names``: spec name → attribute, e.g. SQLAlchemy reserves ``metadata``).

The shaping does not validate: openapi-core checks every response against the spec in tests.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, RootModel

from server.runtime.schemas import JsonSchema, SchemaBundle

Shape = Callable[[Any], Any]

_ABSENT = object()
_REF_PREFIX = "#/components/schemas/"


class Overlay:
    """A value with some fields added or replaced: ``Overlay(row, key=secret)`` answers the
    row's fields and ``key``."""

    __slots__ = ("_base", "_fields")

    def __init__(self, base: Any, /, **fields: Any) -> None:
        self._base = base
        self._fields = fields

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        if name in fields:
            return fields[name]
        return read(object.__getattribute__(self, "_base"), name)


def read(value: Any, name: str) -> Any:
    """The field ``name`` of ``value``: a mapping's key, or an attribute (renamed by the
    class's ``api_names``); ``_ABSENT`` when it has none."""
    if isinstance(value, Mapping):
        return value.get(name, _ABSENT)
    renames: Mapping[str, str] | None = getattr(type(value), "api_names", None)
    if renames is not None:
        name = renames.get(name, name)
    return getattr(value, name, _ABSENT)


def _plain(value: Any) -> Any:
    """A value the schema does not structure (free-form objects, scalars), as JSON data."""
    if isinstance(value, RootModel):
        return _plain(value.root)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    return value


class Presenter:
    """Compiles shapes over one generated package's component schemas."""

    def __init__(self, bundle: SchemaBundle) -> None:
        self.bundle = bundle
        self._components: dict[str, Shape] = {}

    def shape(self, schema: JsonSchema | None) -> Shape:
        """The function shaping a value to ``schema`` (identity-like where it has no fields)."""
        if not schema:
            return _plain
        ref = schema.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF_PREFIX):
            return self._component(ref[len(_REF_PREFIX) :])
        nullable = _non_null_branch(schema)
        if nullable is not None:
            inner = self.shape(nullable)
            if inner is _plain or inner is _plain_list:
                return inner  # both answer None as None
            return lambda value: None if value is None else inner(value)
        if "allOf" in schema:
            merged = self._merge_all_of(schema)
            if merged is not None:
                return self._object(merged)
            return _plain
        if "properties" in schema:
            return self._object(schema)
        items = schema.get("items")
        if schema.get("type") == "array" and isinstance(items, Mapping):
            item = self.shape(items)
            if item is _plain:
                return _plain_list
            return lambda value: None if value is None else [item(v) for v in value]
        return _plain

    def _component(self, name: str) -> Shape:
        shape = self._components.get(name)
        if shape is None:
            target = self.bundle.components.get("schemas", {}).get(name)
            if target is None:
                return _plain
            # Recursive schemas: a forwarding shape stands in until the real one is compiled.
            self._components[name] = lambda value: self._components[name](value)
            shape = self._components[name] = self.shape(target)
        return shape

    def _merge_all_of(self, schema: JsonSchema) -> dict[str, Any] | None:
        """The properties (and defaults) of every ``allOf`` part merged into one object
        schema, or None when a part is not an object schema."""
        properties: dict[str, Any] = dict(schema.get("properties", {}))
        extra = schema.get("additionalProperties")
        for part in schema["allOf"]:
            resolved = self.bundle.resolve(part)
            if "allOf" in resolved:
                nested = self._merge_all_of(resolved)
                if nested is None:
                    return None
                resolved = nested
            if "properties" not in resolved:
                return None
            properties.update(resolved["properties"])
            if resolved.get("additionalProperties") is not None:
                extra = resolved["additionalProperties"]
        return {"type": "object", "properties": properties, "additionalProperties": extra}

    def _object(self, schema: JsonSchema) -> Shape:
        fields: list[tuple[str, Shape | None, Any]] = []
        for name, sub in schema["properties"].items():
            resolved = self.bundle.resolve(sub) if isinstance(sub, Mapping) else {}
            default = sub.get("default", resolved.get("default", _ABSENT))
            field_shape = self.shape(sub)
            # None: a field the schema does not structure, passed through when it is JSON.
            fields.append((name, None if field_shape is _plain else field_shape, default))
        keep_extra = schema.get("additionalProperties") not in (None, False)
        return _compiled_object(fields, keep_extra)


def _compiled_object(fields: list[tuple[str, Shape | None, Any]], keep_extra: bool) -> Shape:
    """The shape of an object schema, as straight-line code (no loop over the fields): the
    presenter runs once per item of every page, and this is its inner loop. Field names enter
    the code as ``repr`` literals, defaults and nested shapes as bound names, so no value of
    the document is ever evaluated.

    A field the schema does not structure is passed through as it is: the JSON encoder writes
    what a handler may hold there (a datetime, a pydantic model, a tuple). So a mapping that
    holds only such fields, none of them missing a default, is answered as it is."""
    declared = frozenset(name for name, _, _ in fields)
    defaulted = tuple(name for name, _, default in fields if default is not _ABSENT)
    namespace: dict[str, Any] = {
        "ABSENT": _ABSENT,
        "plain": _plain,
        "reader": _reader,
        "Mapping": Mapping,
        "declared": declared,
    }
    lines = ["def shape(value, ABSENT=ABSENT, dict=dict, declared=declared):"]
    lines += ["    if value is None:", "    " * 2 + "return None"]
    flat = all(field_shape in (None, _plain_list) for _, field_shape, _ in fields)
    if flat and not keep_extra:
        present = " and ".join(f"value.get({name!r}) is not None" for name in defaulted)
        lines += [
            "    if type(value) is dict and value.keys() <= declared"
            + (f" and {present}" if present else "")
            + ":",
            "        return value",
        ]
    lines += ["    get = value.get if type(value) is dict else reader(value)", "    body = {}"]
    for index, (name, field_shape, default) in enumerate(fields):
        key = repr(name)
        lines.append(f"    item = get({key}, ABSENT)")
        if default is _ABSENT:
            lines.append("    if item is not ABSENT:")
            indent = "        "
        else:
            namespace[f"default_{index}"] = default
            lines.append(f"    if item is ABSENT or item is None:\n        item = default_{index}")
            indent = "    "
        if field_shape is None or field_shape is _plain_list:
            lines.append(f"{indent}body[{key}] = item")
        else:
            namespace[f"shape_{index}"] = field_shape
            lines.append(f"{indent}body[{key}] = shape_{index}(item)")
    if keep_extra:
        lines += [
            "    if isinstance(value, Mapping):",
            "        for key, item in value.items():",
            "            if key not in declared:",
            "                body[str(key)] = item",
        ]
    lines.append("    return body")
    exec(compile("\n".join(lines), "<present>", "exec"), namespace)
    shape: Shape = namespace["shape"]
    return shape


def _plain_list(value: Any) -> Any:
    """An array of values the schema does not structure: as it is (the encoder writes them)."""
    return value


def _reader(value: Any) -> Callable[[str, Any], Any]:
    """``read`` for one value, its kind looked at once rather than once per field: called as
    ``get(name, _ABSENT)``."""
    if type(value) is dict:
        return value.get
    if isinstance(value, Mapping) or getattr(type(value), "api_names", None) is not None:
        return lambda name, _absent: read(value, name)
    return lambda name, absent: getattr(value, name, absent)


def _non_null_branch(schema: JsonSchema) -> JsonSchema | None:
    """The other branch of a nullable ``anyOf``/``oneOf`` (``[X, {type: null}]``), if that is
    what ``schema`` is."""
    for keyword in ("anyOf", "oneOf"):
        branches = schema.get(keyword)
        if isinstance(branches, list) and len(branches) == 2:
            kinds = [b.get("type") == "null" for b in branches]
            if kinds.count(True) == 1:
                return branches[kinds.index(False)]  # type: ignore[no-any-return]
    return None
