"""Compiled validators list every failure, sorted, with fields as paths into the instance."""

from __future__ import annotations

from server.runtime.errors import FieldError
from server.runtime.schemas import SchemaBundle

BUNDLE = SchemaBundle(
    {
        "schemas": {
            "Tag": {"type": "string", "minLength": 1},
            "Item": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": {"type": "string", "maxLength": 3},
                    "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
                    "price": {"type": "number", "minimum": 0},
                },
            },
        }
    }
)
ITEM = BUNDLE.compile({"$ref": "#/components/schemas/Item"})


def test_every_failure_sorted_by_field_then_message() -> None:
    value = {"price": -1, "tags": ["ok", "", 3], "extra": True}
    assert not ITEM.is_valid(value)
    assert ITEM.errors(value, "body") == [
        FieldError("body", '"name" is a required property'),
        FieldError("body", "Additional properties are not allowed ('extra' was unexpected)"),
        FieldError("body.price", "-1 is less than the minimum of 0"),
        FieldError("body.tags[1]", "The value is shorter than 1 character"),
        FieldError("body.tags[2]", '3 is not of type "string"'),
    ]
    assert ITEM.errors({"name": "abc"}, "body") == []


def test_messages_are_bounded() -> None:
    [error] = ITEM.errors({"name": "é" * 400}, "body")
    assert error.field == "body.name"
    assert error.message == "The value is longer than 3 characters"
    [error] = ITEM.errors({"name": 10**400}, "body")
    assert len(error.message) == 300 and error.message.endswith("...")


def test_a_refused_string_is_never_echoed() -> None:
    # The validator cannot tell a password or an API key from a name.
    schema = {
        "type": "object",
        "properties": {
            "api_key": {"type": "string", "minLength": 40, "pattern": "^sk-"},
            "kind": {"enum": ["a", "b"]},
        },
    }
    errors = (
        SchemaBundle({})
        .compile(schema)
        .errors({"api_key": "pk-hunter2-secret", "kind": "hunter2"}, "body")
    )
    assert errors
    assert all("hunter2" not in e.message for e in errors), errors
    assert FieldError("body.api_key", 'The value does not match "^sk-"') in errors
