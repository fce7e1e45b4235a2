"""The IR: routes, names, security, parameter merging and the list convention."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from generator.build_ir import base_path, build, flask_rule
from generator.ir import Api, Source
from generator.prepare import prepare
from generator.resolve import Resolver

SPEC = """
openapi: 3.0.3
info: {title: IR, version: "1"}
servers:
  - url: "{scheme}://api.example.com/{base}/"
    variables:
      scheme: {default: https}
      base: {default: api/v2}
security:
  - bearer: []
  - {}
paths:
  /things/{thing-id}:
    parameters:
      - {name: thing-id, in: path, required: true, schema: {type: string}}
      - {name: verbose, in: query, schema: {type: boolean}}
      - {name: X-Trace, in: header, schema: {type: string}}
    get:
      parameters:
        - {name: verbose, in: query, required: true, schema: {type: integer, nullable: true}}
        - {name: class, in: query, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json: {schema: {$ref: "#/components/schemas/Thing"}}
            text/plain: {schema: {type: string}}
    delete:
      tags: [Thing Admin]
      operationId: deleteThing
      security: []
      responses:
        "204": {description: gone}
  /things:
    get:
      operationId: listThings
      security:
        - bearer: []
          key: []
      parameters:
        - {name: limit, in: query, schema: {type: integer}}
        - {name: cursor, in: query, schema: {type: string}}
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  items: {type: array, items: {$ref: "#/components/schemas/Thing"}}
                  next_cursor: {type: string, nullable: true}
components:
  securitySchemes:
    bearer: {type: http, scheme: Bearer}
    key: {type: apiKey, in: header, name: X-Key}
  schemas:
    Thing: {type: object, properties: {id: {type: string}}}
"""


@pytest.fixture(scope="module")
def api() -> Api:
    document: dict[str, Any] = yaml.safe_load(SPEC)
    source = Source("ir.yaml", "0" * 64)
    return build(document, Resolver(document), source, {"Thing": "ThingModel"})


def test_operations_are_sorted_by_path_then_method(api: Api) -> None:
    assert [(op.path, op.method) for op in api.operations] == [
        ("/api/v2/things", "GET"),
        ("/api/v2/things/{thing-id}", "DELETE"),
        ("/api/v2/things/{thing-id}", "GET"),
    ]


def test_names_and_rule(api: Api) -> None:
    listing, delete, get = api.operations
    assert (listing.operation_id, listing.handler_module, listing.handler_name) == (
        "listThings",
        "default",
        "list_things",
    )
    assert (delete.tag, delete.handler_module, delete.handler_name) == (
        "Thing Admin",
        "thing_admin",
        "delete_thing",
    )
    assert (get.operation_id, get.handler_name) == (
        "get_things_by_thing_id",
        "get_things_by_thing_id",
    )
    assert get.rule == "/api/v2/things/<thing_id>"


def test_security_alternatives(api: Api) -> None:
    listing, delete, get = api.operations
    assert listing.security == (("bearer", "key"),)
    assert delete.security == ()
    assert get.security == (("bearer",), ())


def test_parameters_merge_path_item_and_operation(api: Api) -> None:
    get = api.operations[2]
    summary = [
        (p.location, p.name, p.python_name, p.required, p.style, p.explode, p.schema)
        for p in get.parameters
    ]
    assert summary == [
        ("path", "thing-id", "thing_id", True, "simple", False, {"type": "string"}),
        ("query", "class", "class_", False, "form", True, {"type": "string"}),
        ("query", "verbose", "verbose", True, "form", True, {"type": ["integer", "null"]}),
        ("header", "X-Trace", "x_trace", False, "simple", False, {"type": "string"}),
    ]


def test_media_bodies_name_models_only_for_json_component_refs(api: Api) -> None:
    (ok,) = api.operations[2].responses
    assert [(m.media_type, m.model) for m in ok.content] == [
        ("application/json", "ThingModel"),
        ("text/plain", None),
    ]


def test_list_convention_and_inline_bodies_hoisted(api: Api) -> None:
    listing = api.operations[0]
    assert listing.is_list is True
    assert api.operations[2].is_list is False
    (body,) = listing.responses[0].content
    # a structured inline body gets a component of its own, named after where it is
    assert body.schema == {"$ref": "#/components/schemas/ListThings200Response"}
    document: dict[str, Any] = yaml.safe_load(SPEC)
    prepared = prepare(document, Resolver(document))
    hoisted = prepared.schemas["ListThings200Response"]
    assert hoisted["properties"]["next_cursor"] == {"type": "string", "nullable": True}


def test_security_schemes(api: Api) -> None:
    assert [
        (s.name, s.type, s.scheme, s.location, s.parameter_name) for s in api.security_schemes
    ] == [
        ("bearer", "http", "bearer", None, None),
        ("key", "apiKey", None, "header", "X-Key"),
    ]


@pytest.mark.parametrize(
    ("servers", "expected"),
    [
        ([{"url": "https://example.com/api/v1"}], "/api/v1"),
        ([{"url": "/api/v1/"}], "/api/v1"),
        ([{"url": "https://example.com"}], ""),
        ([], ""),
    ],
)
def test_base_path(servers: list[dict[str, str]], expected: str) -> None:
    assert base_path({"servers": servers}) == expected


def test_flask_rule_handles_several_variables_in_one_segment() -> None:
    assert flask_rule("/files/{file-id}.{ext}") == "/files/<file_id>.<ext>"


OAUTH = """
openapi: 3.1.0
info: {title: scopes, version: "1"}
paths:
  /things:
    get:
      security:
        - oauth: [things:read]
          key: []
        - oidc: [openid, profile]
      responses:
        "200": {description: ok}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
    oidc: {type: openIdConnect, openIdConnectUrl: "https://id.example.com/.well-known/openid-configuration"}
    oauth:
      type: oauth2
      flows:
        clientCredentials:
          tokenUrl: https://id.example.com/token
          scopes: {things:write: write, things:read: read}
        implicit:
          authorizationUrl: https://id.example.com/authorize
          scopes: {things:read: read things}
"""


def test_oauth2_and_openid_connect_scopes_are_recorded() -> None:
    document: dict[str, Any] = yaml.safe_load(OAUTH)
    api = build(document, Resolver(document), Source("oauth.yaml", "0" * 64), {})
    (listing,) = api.operations
    assert listing.security == (("key", "oauth"), ("oidc",))
    assert listing.scopes == ({"oauth": ("things:read",)}, {"oidc": ("openid", "profile")})
    schemes = {s.name: s for s in api.security_schemes}
    assert schemes["oauth"].scopes == {"things:read": "read", "things:write": "write"}
    assert schemes["oidc"].open_id_connect_url == (
        "https://id.example.com/.well-known/openid-configuration"
    )
    assert schemes["key"].scopes == {}
