"""Parameter parsing: raw strings from the path, query, headers and cookies become typed values.

A ``ParameterParser`` is compiled once per operation from the generated table. It applies the
parameter's style/explode, coerces by the schema's type, fills defaults, validates with the
compiled schema and rejects query parameters the operation does not declare.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import Headers, MultiDict

from server.runtime.errors import BadRequest, FieldError
from server.runtime.schemas import CompiledSchema, JsonSchema, SchemaBundle

Coerce = Callable[[str], Any]
# ASCII digits only: ``\d`` (and Python's int()/float()) would also take Arabic-Indic digits, "1_000", " 7".
_INTEGER = re.compile(r"[+-]?[0-9]{1,40}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_DELIMITERS = {"spaceDelimited": " ", "pipeDelimited": "|"}
# OpenAPI: header parameters with these names are ignored (described by other keywords).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})


class CoercionError(ValueError):
    """A raw value that cannot be read as the schema's type."""


@dataclass(slots=True)
class RawParameters:
    """What the HTTP layer hands over, before any interpretation."""

    path: Mapping[str, str]
    query: MultiDict[str, str]
    headers: Mapping[str, str] | Headers  # case-insensitive when it comes from werkzeug
    cookies: Mapping[str, str]


@dataclass(slots=True)
class ParsedParameters:
    """Typed values keyed by the parameter names of the spec."""

    path: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    cookies: dict[str, Any] = field(default_factory=dict)


def _types(schema: JsonSchema, bundle: SchemaBundle) -> list[str]:
    schema = bundle.resolve(schema)
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return [t for t in declared if isinstance(t, str)]
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, ()) or ():
            found.extend(t for t in _types(branch, bundle) if t not in found)
    if "enum" in schema and not found:
        found = sorted({_json_type(v) for v in schema["enum"]}, key=_TYPE_ORDER.index)
    if "const" in schema and not found:
        found = [_json_type(schema["const"])]
    return found


_TYPE_ORDER = ["null", "boolean", "integer", "number", "array", "object", "string"]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _to_integer(raw: str) -> int:
    if not _INTEGER.fullmatch(raw):
        raise CoercionError("must be an integer")
    return int(raw)


def _to_number(raw: str) -> int | float:
    if _INTEGER.fullmatch(raw):
        return int(raw)
    if not _NUMBER.fullmatch(raw):  # no "nan", "inf", "1_0", " 1", non-ASCII digits
        raise CoercionError("must be a number")
    value = float(raw)
    if not math.isfinite(value):  # "1e999"
        raise CoercionError("must be a finite number")
    return value


def _to_boolean(raw: str) -> bool:
    if raw == "true":
        return True
    if raw == "false":
        return False
    raise CoercionError("must be true or false")


def _to_null(raw: str) -> None:
    if raw in ("", "null"):
        return None
    raise CoercionError("must be null")


_SCALARS: dict[str, Coerce] = {
    "integer": _to_integer,
    "number": _to_number,
    "boolean": _to_boolean,
    "null": _to_null,
    "string": str,
}


def scalar_coercer(schema: JsonSchema, bundle: SchemaBundle) -> Coerce:
    """A function reading one raw string as the first type of ``schema`` it fits."""
    types = [t for t in _TYPE_ORDER if t in _types(schema, bundle) and t in _SCALARS]
    if not types or ("string" in types and len(types) == 1):
        return str
    if len(types) == 1:
        return _SCALARS[types[0]]
    candidates = [_SCALARS[t] for t in types]

    def coerce(raw: str) -> Any:
        for candidate in candidates:
            try:
                return candidate(raw)
            except CoercionError:
                continue
        raise CoercionError(f"must be one of: {', '.join(types)}")

    return coerce


@dataclass(frozen=True, slots=True)
class _Param:
    name: str
    location: str
    required: bool
    read: Callable[[RawParameters], Any]  # returns _MISSING when absent
    validator: CompiledSchema
    default: Any
    has_default: bool
    where: str  # "query.limit": the field of its errors
    slot: int  # index of its location in ``_LOCATIONS``


# ParsedParameters' dicts, in the order ``_Param.slot`` indexes them.
_LOCATIONS = ("path", "query", "header", "cookie")
_UNKNOWN = "is not a parameter of this operation"
# Nothing downstream wants a NUL, and PostgreSQL text cannot even store one.
_NUL = "must not contain a NUL character"


_MISSING: Any = object()


def _split(raw: str, sep: str) -> list[str]:
    return [] if raw == "" else raw.split(sep)


def _reader(parameter: Any, bundle: SchemaBundle) -> Callable[[RawParameters], Any]:
    """Build the reader for one parameter: where to look, how to split, how to coerce."""
    name: str = parameter.name
    location: str = parameter.location
    schema = bundle.resolve(parameter.schema)
    kinds = _types(schema, bundle)
    style: str = parameter.style
    explode: bool = parameter.explode
    fetch = _fetcher(location, name)

    if style == "json":  # described by `content: application/json`: the value is JSON text

        def read_json(raw: RawParameters) -> Any:
            text = fetch(raw)
            if text is _MISSING:
                return text
            try:
                return json.loads(text)
            except (ValueError, RecursionError) as exc:
                raise CoercionError("must be JSON") from exc

        return read_json

    if "array" in kinds:
        item = scalar_coercer(bundle.resolve(schema.get("items", {})), bundle)
        sep = _DELIMITERS.get(style, ",")

        def read_array(raw: RawParameters) -> Any:
            if location == "query":
                values = raw.query.getlist(name)
                if not values:
                    return _MISSING
                parts = values if explode and style == "form" else _split(values[-1], sep)
            else:
                single = fetch(raw)
                if single is _MISSING:
                    return _MISSING
                parts = _split(single, ",")
            return [item(p) for p in parts]

        return read_array

    if "object" in kinds and location == "query" and style == "deepObject":
        props = schema.get("properties", {})
        prop_coercers = {k: scalar_coercer(v, bundle) for k, v in props.items()}
        prefix = f"{name}["

        def read_deep(raw: RawParameters) -> Any:
            found: dict[str, Any] = {}
            for key in raw.query:
                if key.startswith(prefix) and key.endswith("]"):
                    prop = key[len(prefix) : -1]
                    found[prop] = prop_coercers.get(prop, str)(raw.query.get(key, ""))
            return found if found else _MISSING

        return read_deep

    if "object" in kinds:
        props = schema.get("properties", {})
        prop_coercers = {k: scalar_coercer(v, bundle) for k, v in props.items()}

        def read_object(raw: RawParameters) -> Any:
            if location == "query" and explode:
                found = {k: prop_coercers[k](raw.query[k]) for k in prop_coercers if k in raw.query}
                return found if found else _MISSING
            single = fetch(raw)
            if single is _MISSING:
                return _MISSING
            if explode:
                pairs = [p.partition("=") for p in _split(single, ",")]
                items = [(k, v) for k, _, v in pairs]
            else:
                flat = _split(single, ",")
                if len(flat) % 2:
                    raise CoercionError("must be key,value pairs")
                items = list(zip(flat[::2], flat[1::2], strict=True))
            return {k: prop_coercers.get(k, str)(v) for k, v in items}

        return read_object

    coerce = scalar_coercer(schema, bundle)

    if coerce is str:

        def read_string(raw: RawParameters) -> Any:
            return fetch(raw)  # a string as it came, or _MISSING

        return read_string

    def read_scalar(raw: RawParameters) -> Any:
        single = fetch(raw)
        return single if single is _MISSING else coerce(single)

    return read_scalar


def _fetcher(location: str, name: str) -> Callable[[RawParameters], Any]:
    """Read one parameter's single raw value (``_MISSING`` when absent), compiled per location."""
    if location == "query":

        def from_query(raw: RawParameters) -> Any:
            values = raw.query.getlist(name)
            if not values:
                return _MISSING
            if len(values) > 1:
                raise CoercionError("must be given once")
            return values[0]

        return from_query
    attribute = {"path": "path", "header": "headers", "cookie": "cookies"}[location]

    def from_mapping(raw: RawParameters) -> Any:
        value = getattr(raw, attribute).get(name)
        if value is None:
            return _MISSING
        if "\x00" in value:
            raise CoercionError(_NUL)
        return value

    return from_mapping


class ParameterParser:
    """Parses all parameters of one operation; compiled once, called per request."""

    def __init__(self, parameters: Iterable[Any], bundle: SchemaBundle) -> None:
        self._params: list[_Param] = []
        known: set[str] = set()
        deep: list[str] = []
        for p in parameters:
            if p.location == "header" and p.name.lower() in _IGNORED_HEADERS:
                continue
            schema = bundle.resolve(p.schema)
            self._params.append(
                _Param(
                    name=p.name,
                    location=p.location,
                    required=bool(p.required),
                    read=_reader(p, bundle),
                    validator=bundle.compile(p.schema),
                    default=schema.get("default"),
                    has_default="default" in schema,
                    where=f"{p.location}.{p.name}",
                    slot=_LOCATIONS.index(p.location),
                )
            )
            if p.location == "query":
                known.add(p.name)
                if p.style == "deepObject" or "object" in _types(schema, bundle):
                    deep.append(f"{p.name}[")
                    known.update(schema.get("properties", {}))
        self._known_query = frozenset(known)
        self._deep_prefixes = tuple(deep) or ("\0",)
        self.locations = frozenset(p.location for p in self._params)

    def parse(self, raw: RawParameters) -> ParsedParameters:
        """Typed parameters, or ``BadRequest`` listing every problem at once."""
        parsed = ParsedParameters()
        errors: list[FieldError] = []
        known = self._known_query
        for key in raw.query:
            if key not in known and not key.startswith(self._deep_prefixes):
                errors.append(FieldError(f"query.{key}", _UNKNOWN))
        if raw.query:
            errors.extend(_nul_errors(raw.query))
        if not self._params:
            if errors:
                raise _bad_request(errors)
            return parsed
        targets = (parsed.path, parsed.query, parsed.headers, parsed.cookies)
        for p in self._params:
            try:
                value = p.read(raw)
            except CoercionError as exc:
                errors.append(FieldError(p.where, str(exc)))
                continue
            if value is _MISSING:
                if p.required:
                    errors.append(FieldError(p.where, "is required"))
                elif p.has_default:
                    targets[p.slot][p.name] = p.default
                continue
            if not p.validator.is_valid(value):
                errors.extend(p.validator.errors(value, p.where))
                continue
            targets[p.slot][p.name] = value
        if errors:
            raise _bad_request(errors)
        return parsed


def _nul_errors(query: MultiDict[str, str]) -> list[FieldError]:
    """One error per query parameter whose name or a value holds a NUL (sent as ``%00``)."""
    return [
        FieldError(f"query.{key}", _NUL)
        for key, values in query.lists()
        if "\x00" in key or any("\x00" in value for value in values)
    ]


def _bad_request(errors: list[FieldError]) -> BadRequest:
    unknown_only = all(e.message == _UNKNOWN for e in errors)
    return BadRequest(
        "Invalid request parameters.",
        code="unknown_parameter" if unknown_only else "validation_failed",
        errors=errors,
    )
