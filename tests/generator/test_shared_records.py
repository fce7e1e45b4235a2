"""Records that come from one component are written once and named wherever they are used; the
table they make is the table the same spec makes with every such reference written out."""

from __future__ import annotations

import copy
import dataclasses
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from flask import Flask
from generator_support import Generate

from generator.build_ir import constant_names

SPEC = """
openapi: 3.1.0
info: {title: Shared records, version: "1"}
paths:
  /things:
    get:
      operationId: listThings
      parameters:
        - $ref: "#/components/parameters/PageSize"
        - $ref: "#/components/parameters/page_size"
        - {name: q, in: query, schema: {type: string}}
      responses:
        "200": {description: ok}
        "400": {$ref: "#/components/responses/Problem"}
        "404": {$ref: "#/components/responses/Problem"}
        default: {$ref: "#/components/responses/Fault"}
    post:
      operationId: createThing
      parameters:
        - $ref: "#/components/parameters/PageSize"
      requestBody:
        content:
          application/json:
            schema: {type: object, properties: {callback: {type: string}}}
      callbacks:
        done:
          "{$request.body#/callback}":
            post:
              responses:
                "204": {description: ok}
                "400": {$ref: "#/components/responses/Problem"}
      responses:
        "201": {description: created}
        "400": {$ref: "#/components/responses/Problem"}
webhooks:
  thingChanged:
    post:
      responses:
        "200": {description: ok}
        "4XX": {$ref: "#/components/responses/Problem"}
components:
  parameters:
    PageSize: {name: page_size, in: query, schema: {type: integer, maximum: 50}}
    page_size: {name: size, in: header, schema: {type: integer}}
  responses:
    Problem:
      description: A problem.
      headers:
        X-Request-Id: {required: true, schema: {type: string}}
      content:
        application/problem+json:
          schema: {$ref: "#/components/schemas/Problem"}
    Fault: {$ref: "#/components/responses/Problem"}
  schemas:
    Problem:
      type: object
      properties: {title: {type: string}}
"""


def _written_out(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every reference to a parameter or response component replaced by the
    component itself (following chains)."""
    components = document["components"]

    def target(ref: str) -> Any:
        _, _, kind, name = ref.split("/")
        found = components[kind][name]
        return target(found["$ref"]) if "$ref" in found else copy.deepcopy(found)

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(
                ("#/components/parameters/", "#/components/responses/")
            ):
                return walk(target(ref))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return {
        **walk({k: v for k, v in document.items() if k != "components"}),
        "components": {"schemas": components["schemas"]},
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


@pytest.fixture
def packages(tmp_path: Path, generate: Generate) -> Iterator[dict[str, ModuleType]]:
    """The operations modules generated from SPEC and from SPEC written out, by name."""
    document = yaml.safe_load(SPEC)
    specs = {"shared": document, "written_out": _written_out(document)}
    modules = {}
    sys.path.insert(0, str(tmp_path))
    try:
        for name, spec in specs.items():
            path = tmp_path / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec), encoding="utf-8")
            result = generate(path, tmp_path / f"{name}_pkg")
            assert result.status == 0, result.stderr
            modules[name] = importlib.import_module(f"{name}_pkg.operations")
            modules[name + ".routes"] = importlib.import_module(f"{name}_pkg.routes")
        yield modules
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m.split(".")[0].endswith("_pkg")]:
            del sys.modules[module]


def test_shared_records_make_the_table_the_written_out_spec_makes(
    packages: dict[str, ModuleType],
) -> None:
    shared, written_out = packages["shared"], packages["written_out"]
    for table in ("OPERATIONS", "WEBHOOKS", "CALLBACKS"):
        assert _plain(getattr(shared, table)) == _plain(getattr(written_out, table)), table


def test_each_component_is_written_once_under_each_status(
    packages: dict[str, ModuleType], tmp_path: Path
) -> None:
    text = (tmp_path / "shared_pkg" / "operations.py").read_text()
    constants = {
        line.split(" = ")[0]
        for line in text.splitlines()
        if line.startswith(("PARAMETER_", "RESPONSE_"))
    }
    assert constants == {
        "PARAMETER_PAGE_SIZE",  # PageSize
        "PARAMETER_PAGE_SIZE_2",  # page_size: a name of its own
        "RESPONSE_FAULT_DEFAULT",
        "RESPONSE_PROBLEM_400",
        "RESPONSE_PROBLEM_404",
        "RESPONSE_PROBLEM_4XX",  # used by the webhook only
    }
    # Two records written in full (Problem, and Fault, which refers to it), three mentions each.
    assert text.count("X-Request-Id") == 6
    assert 'RESPONSE_PROBLEM_404 = replace(RESPONSE_PROBLEM_400, status="404")' in text
    module = packages["shared"]
    listing = module.OPERATIONS_BY_ID["listThings"]
    assert listing.responses[1] is module.RESPONSE_PROBLEM_400
    assert module.CALLBACKS[0].responses[1] is module.RESPONSE_PROBLEM_400
    assert module.WEBHOOKS[0].responses[1] is module.RESPONSE_PROBLEM_4XX


def test_routes_are_registered_from_the_table(packages: dict[str, ModuleType]) -> None:
    app = Flask("shared")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    packages["shared.routes"].register_routes(app, lambda op: lambda: op.operation_id)
    rules = {
        (rule.rule, rule.endpoint, tuple(sorted(rule.methods or ())))
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static"
    }
    assert rules == {
        ("/things", "listThings", ("GET", "HEAD")),
        ("/things", "createThing", ("POST",)),
    }


def test_constant_names_are_unique_and_stable() -> None:
    document = {
        "components": {
            "parameters": {"a-b": {}, "A_B": {}, "aB": {}, "\u00e9": {}},
            "responses": {"Gone": {}, "gone": {}},
        }
    }
    assert constant_names(document) == {
        ("parameters", "A_B"): "PARAMETER_A_B",
        ("parameters", "a-b"): "PARAMETER_A_B_2",
        ("parameters", "aB"): "PARAMETER_A_B_3",
        ("parameters", "\u00e9"): "PARAMETER_COMPONENT",
        ("responses", "Gone"): "RESPONSE_GONE",
        ("responses", "gone"): "RESPONSE_GONE_2",
    }
