"""Synthetic, deterministic OpenAPI 3.1 documents of a given number of operations.

Realistic in shape: resources with the six CRUD-style operations (list with the pagination
convention, create, get, replace, update, delete), each with a response schema (readOnly ids and
timestamps), a create/replace input, a patch input, a page envelope and an enum, and references
between resources; shared parameters, problem responses and bearer security. Every document is
clean (no warnings), so a run measures generation, not diagnostics.
"""

from __future__ import annotations

import json
from typing import Any

OPERATIONS_PER_RESOURCE = 6
_FIELD_KINDS = (
    {"type": "string", "minLength": 1, "maxLength": 100},
    {"type": "integer", "minimum": 0, "maximum": 1000000},
    {"type": "number", "minimum": 0, "maximum": 10000},
    {"type": "boolean"},
    {"type": "string", "format": "date-time"},
    {"type": ["string", "null"], "maxLength": 200},
    {"type": "array", "maxItems": 20, "items": {"type": "string", "maxLength": 30}},
    {"type": "object", "additionalProperties": {"type": "string", "maxLength": 50}},
)


def resource_name(index: int) -> str:
    """`Resource0007`: a stable, sortable name."""
    return f"Resource{index:04d}"


def build(operations: int, schemas_total: int | None = None) -> dict[str, Any]:
    """A document with exactly `operations` operations; with `schemas_total`, each resource
    also has as many part schemas (referenced from it) as it takes to reach that many schemas."""
    resources = -(-operations // OPERATIONS_PER_RESOURCE)
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {"Problem": _problem()}
    remaining = operations
    per_resource = len(_schemas(resource_name(0), 0))
    parts = max(0, (schemas_total or 0) - 1 - per_resource * resources)
    for index in range(resources):
        name = resource_name(index)
        schemas.update(_schemas(name, index))
        count = parts // resources + (1 if index < parts % resources else 0)
        schemas.update(_parts(name, index, count, schemas[name]))
        ops = _operations(name, index)
        for path, item in ops.items():
            kept = {}
            for key, value in item.items():
                if key == "parameters":
                    kept[key] = value
                elif remaining > 0:
                    kept[key] = value
                    remaining -= 1
            if set(kept) - {"parameters"}:
                paths[path] = kept
    return {
        "openapi": "3.1.0",
        "info": {"title": f"Synthetic API ({operations} operations)", "version": "1.0.0"},
        "servers": [{"url": "https://api.example.com/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "Limit": {
                    "name": "limit",
                    "in": "query",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
                },
                "Cursor": {
                    "name": "cursor",
                    "in": "query",
                    "schema": {"type": "string", "maxLength": 200},
                },
            },
            "responses": {
                status: {
                    "description": title,
                    "content": {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    },
                }
                for status, title in (
                    ("BadRequest", "The request breaks the contract."),
                    ("Unauthorized", "No valid credentials."),
                    ("Forbidden", "Not allowed."),
                    ("NotFound", "No such resource."),
                )
            },
            "schemas": schemas,
        },
    }


def to_yaml(document: dict[str, Any]) -> str:
    """Block-style YAML, keys in insertion order, no anchors (as people write specs: the
    builders share some dicts between operations, which PyYAML would write as `&id001`)."""
    import yaml

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data: Any) -> bool:
            return True

    text: str = yaml.dump(document, Dumper=Dumper, sort_keys=False, width=100, allow_unicode=True)
    return text


def to_json(document: dict[str, Any]) -> str:
    """Indented JSON."""
    return json.dumps(document, indent=2) + "\n"


def _problem() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", "title", "status"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "errors": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["field", "message"],
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                },
            },
        },
    }


def _fields(index: int) -> dict[str, Any]:
    count = 5 + index % 6
    return {
        f"field_{i}_{kind}": dict(_FIELD_KINDS[(index + i) % len(_FIELD_KINDS)])
        for i, kind in zip(
            range(count), ("a", "b", "c", "d", "e", "f", "g", "h", "i", "j"), strict=False
        )
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _schemas(name: str, index: int) -> dict[str, Any]:
    fields = _fields(index)
    inputs: dict[str, Any] = {"name": {"type": "string", "minLength": 1, "maxLength": 100}}
    inputs.update(fields)
    inputs["status"] = _ref(f"{name}Status")
    if index > 0:
        inputs["parent_id"] = {"type": ["string", "null"], "pattern": "^[a-z0-9_]{1,40}$"}
    properties: dict[str, Any] = {
        "id": {"type": "string", "readOnly": True, "pattern": "^[a-z0-9_]{1,40}$"},
        **inputs,
        "created_at": {"type": "string", "format": "date-time", "readOnly": True},
        "updated_at": {"type": ["string", "null"], "format": "date-time", "readOnly": True},
    }
    output = {
        "type": "object",
        "required": ["id", "name", "status", "created_at"],
        "properties": properties,
    }
    if index > 0:
        properties["parent"] = {"anyOf": [_ref(resource_name(index - 1)), {"type": "null"}]}
    return {
        f"{name}Status": {"type": "string", "enum": ["active", "archived", "deleted"]},
        name: output,
        f"{name}Input": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name"],
            "properties": inputs,
        },
        f"{name}Patch": {
            "type": "object",
            "additionalProperties": False,
            "minProperties": 1,
            "properties": inputs,
        },
        f"{name}Page": {
            "type": "object",
            "required": ["items", "next_cursor"],
            "properties": {
                "items": {"type": "array", "items": _ref(name)},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
    }


def _parts(name: str, index: int, count: int, output: dict[str, Any]) -> dict[str, Any]:
    """`count` part schemas of a resource, each referenced from the resource's `parts`."""
    if not count:
        return {}
    parts = {
        f"{name}Part{k:03d}": {"type": "object", "properties": _fields(index + k)}
        for k in range(count)
    }
    output["properties"]["parts"] = {
        "type": "object",
        "readOnly": True,
        "properties": {part.lower(): _ref(part) for part in parts},
    }
    return parts


def _errors(*statuses: str) -> dict[str, Any]:
    names = {"400": "BadRequest", "401": "Unauthorized", "403": "Forbidden", "404": "NotFound"}
    return {s: {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _operations(name: str, index: int) -> dict[str, Any]:
    collection = f"/{name.lower()}s"
    item = f"{collection}/{{{name.lower()}_id}}"
    tag = name.lower()
    id_parameter = {
        "name": f"{name.lower()}_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9_]{1,40}$"},
    }
    body = {"required": True, **_json(_ref(f"{name}Input"))}
    return {
        collection: {
            "get": {
                "operationId": f"list{name}s",
                "tags": [tag],
                "summary": f"List {name} objects.",
                "parameters": [
                    {"$ref": "#/components/parameters/Limit"},
                    {"$ref": "#/components/parameters/Cursor"},
                    {"name": "status", "in": "query", "schema": _ref(f"{name}Status")},
                ],
                "responses": {
                    "200": {"description": "A page.", **_json(_ref(f"{name}Page"))},
                    **_errors("400", "401", "403"),
                },
            },
            "post": {
                "operationId": f"create{name}",
                "tags": [tag],
                "summary": f"Create a {name}.",
                "requestBody": body,
                "responses": {
                    "201": {
                        "description": "Created.",
                        "headers": {"Location": {"schema": {"type": "string"}}},
                        **_json(_ref(name)),
                    },
                    **_errors("400", "401", "403"),
                },
            },
        },
        item: {
            "parameters": [id_parameter],
            "get": {
                "operationId": f"get{name}",
                "tags": [tag],
                "responses": {
                    "200": {"description": "The object.", **_json(_ref(name))},
                    **_errors("401", "403", "404"),
                },
            },
            "put": {
                "operationId": f"replace{name}",
                "tags": [tag],
                "requestBody": body,
                "responses": {
                    "200": {"description": "Replaced.", **_json(_ref(name))},
                    **_errors("400", "401", "403", "404"),
                },
            },
            "patch": {
                "operationId": f"update{name}",
                "tags": [tag],
                "requestBody": {"required": True, **_json(_ref(f"{name}Patch"))},
                "responses": {
                    "200": {"description": "Updated.", **_json(_ref(name))},
                    **_errors("400", "401", "403", "404"),
                },
            },
            "delete": {
                "operationId": f"delete{name}",
                "tags": [tag],
                "responses": {"204": {"description": "Deleted."}, **_errors("401", "403", "404")},
            },
        },
    }
