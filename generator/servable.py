"""What a valid document asks for that a server cannot honour, said before anyone finds out.

Warnings all: the document is valid OpenAPI, but a request the spec allows never reaches the
operation (a header a common server drops, a path key holding a query string), or the schema
refuses its own default.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import jsonpointer
from .diagnostics import Diagnostic
from .walk import OperationSite, ParameterSite

_DROPPED_HEADER = (
    "contains '_': common servers and proxies (nginx, werkzeug's development server) drop "
    "headers with underscores, so it never arrives; use '-'"
)
# Keywords whose values are instances or names, never schemas.
_NOT_SCHEMAS = frozenset({"const", "default", "enum", "example", "examples", "required"})


def header_parameters(site: OperationSite, params: list[ParameterSite]) -> Iterator[Diagnostic]:
    """Header parameters whose names have an underscore."""
    for param in params:
        if param.location == "header" and "_" in param.name:
            message = f"header parameter {param.name!r} of {site.label} {_DROPPED_HEADER}"
            yield Diagnostic.warning(param.pointer, message)


def security_schemes(document: dict[str, Any]) -> Iterator[Diagnostic]:
    """API keys sent in headers whose names have an underscore."""
    components = document.get("components")
    schemes = components.get("securitySchemes") if isinstance(components, dict) else None
    if not isinstance(schemes, dict):
        return
    for name, scheme in schemes.items():
        if not isinstance(scheme, dict) or scheme.get("type") != "apiKey":
            continue
        header = scheme.get("name")
        if scheme.get("in") == "header" and isinstance(header, str) and "_" in header:
            pointer = jsonpointer.join(["components", "securitySchemes", name, "name"])
            message = f"API key header {header!r} of security scheme {name!r} {_DROPPED_HEADER}"
            yield Diagnostic.warning(pointer, message)


def path_key(path: str) -> Iterator[Diagnostic]:
    """A path key with a query string or fragment: no request path can ever match it."""
    for mark, what in (("?", "a query string"), ("#", "a fragment")):
        if mark in path:
            message = (
                f"path {path!r} holds {what} ({mark!r}): a request path never contains one, "
                "so this operation is unreachable; declare query parameters instead"
            )
            yield Diagnostic.warning(jsonpointer.child("/paths", path), message)
            return


def null_defaults(node: Any, pointer: str, *, openapi: str) -> list[Diagnostic]:
    """`default: null` on a schema that does not allow null (the reference validator refuses
    the document)."""
    found = []
    stack: list[tuple[str, Any]] = [(pointer, node)]
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            if "default" in node and node["default"] is None and _refuses_null(node, openapi):
                at = jsonpointer.child(pointer, "default")
                message = f"default null is not allowed by its schema (type {node['type']!r})"
                found.append(Diagnostic.warning(at, message))
            for key, value in node.items():
                if key not in _NOT_SCHEMAS and not key.startswith("x-"):
                    stack.append((jsonpointer.child(pointer, key), value))
        elif isinstance(node, list):
            stack.extend((f"{pointer}/{i}", item) for i, item in enumerate(node))
    return sorted(found, key=lambda d: d.pointer)


def _refuses_null(schema: dict[str, Any], openapi: str) -> bool:
    kind = schema.get("type")
    if isinstance(kind, str):
        kinds = [kind]
    elif isinstance(kind, list):
        kinds = kind
    else:
        return False
    if "null" in kinds:
        return False
    return not (openapi.startswith("3.0") and schema.get("nullable") is True)
