"""The effective schemas: discriminator bases become unions wherever they are named."""

from __future__ import annotations

from typing import Any

import yaml

from generator.prepare import prepare
from generator.resolve import Resolver

SPEC = """
openapi: 3.1.0
info: {title: prepare, version: "1"}
paths: {}
components:
  schemas:
    Pet:
      type: object
      required: [kind]
      properties:
        kind: {type: string}
        parent: {$ref: "#/components/schemas/Pet"}
      discriminator: {propertyName: kind}
    Cat:
      allOf:
        - $ref: "#/components/schemas/Pet"
        - {type: object, properties: {lives: {type: integer}}}
    Dog:
      allOf:
        - $ref: "#/components/schemas/Pet"
        - {type: object, properties: {friend: {$ref: "#/components/schemas/Pet"}}}
    Owner:
      type: object
      properties:
        pets: {type: array, items: {$ref: "#/components/schemas/Pet"}}
    Plain:
      type: object
      properties: {name: {type: string}}
"""


def _prepared() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC)
    return prepare(document, Resolver(document)).schemas


def test_a_base_named_inside_a_schema_becomes_its_union() -> None:
    schemas = _prepared()
    assert schemas["Owner"]["properties"]["pets"]["items"] == {
        "$ref": "#/components/schemas/PetUnion"
    }
    assert schemas["Pet"]["properties"]["parent"] == {"$ref": "#/components/schemas/PetUnion"}
    assert schemas["PetUnion"]["discriminator"]["mapping"] == {
        "Cat": "#/components/schemas/Cat",
        "Dog": "#/components/schemas/Dog",
    }


def test_extending_the_base_through_allof_still_names_the_base() -> None:
    schemas = _prepared()
    assert schemas["Cat"]["allOf"][0] == {"$ref": "#/components/schemas/Pet"}
    dog = schemas["Dog"]["allOf"]
    assert dog[0] == {"$ref": "#/components/schemas/Pet"}
    assert dog[1]["properties"]["friend"] == {"$ref": "#/components/schemas/PetUnion"}


def test_schemas_that_do_not_name_a_base_are_left_alone() -> None:
    document: dict[str, Any] = yaml.safe_load(SPEC)
    prepared = prepare(document, Resolver(document)).schemas
    assert prepared["Plain"] is document["components"]["schemas"]["Plain"]
