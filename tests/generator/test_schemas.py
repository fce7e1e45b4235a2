"""OpenAPI schemas are normalised to JSON Schema 2020-12."""

from __future__ import annotations

import json

from generator.schemas import json_text, normalise, schemas_document


def test_30_nullable_type_becomes_a_type_list() -> None:
    schema = {"type": "string", "nullable": True, "maxLength": 3}
    assert normalise(schema, openapi_30=True) == {"type": ["string", "null"], "maxLength": 3}


def test_30_nullable_enum_admits_null() -> None:
    schema = {"type": "string", "enum": ["a"], "nullable": True}
    assert normalise(schema, openapi_30=True) == {"type": ["string", "null"], "enum": ["a", None]}


def test_30_nullable_without_type_becomes_any_of_null() -> None:
    schema = {"allOf": [{"$ref": "#/components/schemas/A"}], "nullable": True, "description": "d"}
    assert normalise(schema, openapi_30=True) == {
        "description": "d",
        "anyOf": [{"allOf": [{"$ref": "#/components/schemas/A"}]}, {"type": "null"}],
    }


def test_30_boolean_exclusive_bounds_become_numbers() -> None:
    schema = {
        "type": "integer",
        "minimum": 1,
        "exclusiveMinimum": True,
        "maximum": 9,
        "exclusiveMaximum": False,
    }
    assert normalise(schema, openapi_30=True) == {
        "type": "integer",
        "exclusiveMinimum": 1,
        "maximum": 9,
    }


def test_30_ref_siblings_are_dropped() -> None:
    schema = {"$ref": "#/components/schemas/A", "description": "ignored in 3.0"}
    assert normalise(schema, openapi_30=True) == {"$ref": "#/components/schemas/A"}


def test_nested_schemas_are_normalised() -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer", "nullable": True, "example": 1}},
        "items": {"type": "string", "nullable": True},
        "oneOf": [{"type": "string", "nullable": True}],
        "additionalProperties": {"type": "string", "nullable": True},
    }
    assert normalise(schema, openapi_30=True) == {
        "type": "object",
        "properties": {"a": {"type": ["integer", "null"]}},
        "items": {"type": ["string", "null"]},
        "oneOf": [{"type": ["string", "null"]}],
        "additionalProperties": {"type": ["string", "null"]},
    }


def test_openapi_only_keywords_are_dropped_and_read_write_only_kept() -> None:
    schema = {
        "type": "object",
        "example": {},
        "discriminator": {"propertyName": "kind"},
        "xml": {"name": "x"},
        "externalDocs": {"url": "https://example.com"},
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "pw": {"type": "string", "writeOnly": True},
        },
    }
    assert normalise(schema, openapi_30=False) == {
        "type": "object",
        "properties": {
            "id": {"type": "string", "readOnly": True},
            "pw": {"type": "string", "writeOnly": True},
        },
    }


def test_31_schemas_keep_their_meaning() -> None:
    schema = {"type": ["string", "null"], "exclusiveMinimum": 3, "$ref": "#/components/schemas/A"}
    assert normalise(schema, openapi_30=False) == schema


def test_input_is_not_changed() -> None:
    schema = {"type": "string", "nullable": True}
    normalise(schema, openapi_30=True)
    assert schema == {"type": "string", "nullable": True}


def test_schemas_document_is_sorted_and_resolvable() -> None:
    document = schemas_document(
        {"B": {"type": "string"}, "A": {"$ref": "#/components/schemas/B"}}, openapi_30=False
    )
    text = json_text({**document, "x-generated": {"sha256": "0" * 64}}, sort_keys=True)
    assert list(json.loads(text)["components"]["schemas"]) == ["A", "B"]
    assert json.loads(text)["x-generated"] == {"sha256": "0" * 64}
    assert text.decode() == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_json_text_falls_back_for_integers_orjson_refuses() -> None:
    assert json.loads(json_text({"maximum": 2**70})) == {"maximum": 2**70}
