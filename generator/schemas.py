"""Normalise OpenAPI Schema Objects to JSON Schema 2020-12.

OpenAPI 3.1 schemas already are 2020-12; 3.0 schemas need `nullable` and boolean
`exclusiveMinimum`/`exclusiveMaximum` rewritten, and their `$ref` siblings dropped (3.0 ignores them).
Both lose the OpenAPI-only annotations (`example`, `discriminator`, `xml`, `externalDocs`).
`readOnly`/`writeOnly` stay: the server needs them to tell request from response.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_DROPPED = frozenset({"example", "discriminator", "xml", "externalDocs"})
# Keywords whose value is one subschema, a list of subschemas, or a map of named subschemas.
SUBSCHEMA = frozenset(
    {
        "additionalProperties",
        "contains",
        "contentSchema",
        "else",
        "if",
        "items",
        "not",
        "propertyNames",
        "then",
        "unevaluatedItems",
        "unevaluatedProperties",
    }
)
SUBSCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
SUBSCHEMA_MAPS = frozenset(
    {"$defs", "definitions", "dependentSchemas", "patternProperties", "properties"}
)
# Annotations that stay beside an `anyOf` made from a nullable schema without a `type`.
_ANNOTATIONS = frozenset(
    {"default", "deprecated", "description", "examples", "readOnly", "title", "writeOnly"}
)


def is_openapi_30(version: str) -> bool:
    """True for an `openapi: 3.0.x` document."""
    return version.startswith("3.0")


def normalise(schema: Any, *, openapi_30: bool) -> Any:
    """A JSON Schema 2020-12 copy of an OpenAPI Schema Object (the input is not changed)."""
    if not isinstance(schema, dict):
        return schema  # `true`/`false` schemas
    if "$ref" in schema and openapi_30:
        return {"$ref": schema["$ref"]}
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key in SUBSCHEMA:
            result[key] = normalise(value, openapi_30=openapi_30)
        elif key in SUBSCHEMA_LISTS and isinstance(value, list):
            result[key] = [normalise(item, openapi_30=openapi_30) for item in value]
        elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
            result[key] = {
                name: normalise(sub, openapi_30=openapi_30) for name, sub in value.items()
            }
        else:
            result[key] = value
    if openapi_30:
        _rewrite_exclusive(result, "exclusiveMinimum", "minimum")
        _rewrite_exclusive(result, "exclusiveMaximum", "maximum")
        if result.pop("nullable", False) is True:
            return _nullable(result)
    return result


def _rewrite_exclusive(schema: dict[str, Any], exclusive: str, bound: str) -> None:
    flag = schema.get(exclusive)
    if not isinstance(flag, bool):
        return
    del schema[exclusive]
    if flag and bound in schema:
        schema[exclusive] = schema.pop(bound)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
        return schema
    if isinstance(kind, list):
        if "null" not in kind:
            schema["type"] = [*kind, "null"]
        return schema
    outer = {key: schema.pop(key) for key in sorted(_ANNOTATIONS & schema.keys())}
    return {**outer, "anyOf": [schema, {"type": "null"}]}


def schemas_document(
    component_schemas: dict[str, Any],
    *,
    openapi_30: bool,
    unions: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
) -> dict[str, Any]:
    """`schemas.json` (without its notice): every component schema under `components/schemas`.

    A discriminator union (`unions`: name -> (base, discriminator value -> subtype)) becomes a
    `oneOf` whose branches also require their discriminator value, as the discriminator means.
    """
    normalised = {
        name: normalise(schema, openapi_30=openapi_30) for name, schema in component_schemas.items()
    }
    for name, (base, subtypes) in (unions or {}).items():
        discriminator = component_schemas[base].get("discriminator", {})
        normalised[name] = discriminated_one_of(str(discriminator["propertyName"]), subtypes)
    return {"$schema": JSON_SCHEMA_DIALECT, "components": {"schemas": normalised}}


def discriminated_one_of(property_name: str, subtypes: Mapping[str, str]) -> dict[str, Any]:
    """`oneOf` the subtypes, each branch pinned to its discriminator value."""
    return {
        "oneOf": [
            {
                "$ref": "#/components/schemas/" + name.replace("~", "~0").replace("/", "~1"),
                "properties": {property_name: {"const": value}},
                "required": [property_name],
            }
            for value, name in subtypes.items()
        ]
    }


def openapi_document(document: dict[str, Any], *, generated: dict[str, str]) -> bytes:
    """`openapi.json`: the spec as written (key order kept), for the server to serve."""
    return json_text({"x-generated": generated, **document})


def json_text(value: Any, *, sort_keys: bool = False) -> bytes:
    """Indented JSON, UTF-8, with a final newline: orjson, which is ten times faster than the
    standard library; that, for what orjson refuses (integers beyond 64 bits)."""
    options = orjson.OPT_INDENT_2 | (orjson.OPT_SORT_KEYS if sort_keys else 0)
    try:
        return orjson.dumps(value, option=options) + b"\n"
    except (orjson.JSONEncodeError, TypeError):
        text = json.dumps(value, indent=2, sort_keys=sort_keys, ensure_ascii=False)
        return text.encode("utf-8") + b"\n"
