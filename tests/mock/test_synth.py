"""Synthesised values are valid, small and deterministic."""

from __future__ import annotations

from typing import Any

import pytest

from server.mock.regex import example
from server.mock.synth import Synthesizer
from server.runtime.schemas import SchemaBundle

COMPONENTS: dict[str, Any] = {
    "schemas": {
        "Node": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "maxLength": 5},
                "next": {"$ref": "#/components/schemas/Node"},
                "kids": {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
            },
        },
        "Loop": {
            "type": "object",
            "required": ["again"],
            "properties": {"again": {"$ref": "#/components/schemas/Loop"}},
        },
        "Secret": {
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "string"},
                "password": {"type": "string", "writeOnly": True},
            },
        },
    }
}
SYNTH = Synthesizer(SchemaBundle(COMPONENTS))

SCHEMAS = [
    {"type": "string", "pattern": "^[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}$"},
    {"type": "string", "pattern": "^pet_[a-z0-9]+$", "minLength": 8},
    {"type": "string", "minLength": 12, "maxLength": 12},
    {"type": "string", "format": "date-time"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "ipv6"},
    {"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 7},
    {"type": "number", "exclusiveMinimum": 0, "maximum": 0.5},
    {"type": "integer", "exclusiveMaximum": -3},
    {"type": ["null", "boolean"]},
    {"const": {"a": 1}},
    {"enum": [None, "x"]},
    {"type": "array", "minItems": 3, "uniqueItems": True, "items": {"type": "integer"}},
    {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 2},
    {"type": "object", "minProperties": 2, "additionalProperties": {"type": "integer"}},
    {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "patternProperties": {"^x-[a-z]+$": {"type": "string"}},
    },
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
    {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 3}]},
    {
        "allOf": [
            {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}},
            {"required": ["b"], "properties": {"b": {"type": "string", "format": "date"}}},
        ]
    },
    {"type": "object", "required": ["v"], "dependentRequired": {"v": ["w"]}},
    {"$ref": "#/components/schemas/Node"},
    {"type": "array", "maxItems": 2, "items": {"$ref": "#/components/schemas/Node"}},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: str(s)[:60])
def test_values_are_valid_and_deterministic(schema: dict[str, Any]) -> None:
    value = SYNTH.value(schema)
    assert SYNTH.is_valid(schema, value), value
    assert Synthesizer(SchemaBundle(COMPONENTS)).value(schema) == value


def test_recursion_stops_and_responses_omit_write_only_properties() -> None:
    node = SYNTH.value({"$ref": "#/components/schemas/Node"})
    assert node == {"name": "mock"}
    assert SYNTH.value({"$ref": "#/components/schemas/Secret"}) == {"user": "mock"}
    assert "password" in SYNTH.value({"$ref": "#/components/schemas/Secret"}, "request")
    SYNTH.value({"$ref": "#/components/schemas/Loop"})  # ends, even if nothing can be valid


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [("^a(b|c)d$", "abd"), ("[0-9]{3}", "000"), ("^[^a-z]+$", "0"), (r"^\d+-\w{2}$", "0-aa")],
)
def test_regex_examples(pattern: str, expected: str) -> None:
    assert example(pattern) == expected
