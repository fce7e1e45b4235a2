"""Walk the operations of a spec the same way for linting and for building the IR."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from . import jsonpointer, names
from .resolve import RefError, Resolver, is_ref

HTTP_METHODS = ("delete", "get", "head", "options", "patch", "post", "put", "trace")
PATH_TEMPLATE = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class OperationSite:
    """One operation of the spec, with the path item it sits in and where both are."""

    path: str
    method: str
    pointer: str
    operation: dict[str, Any]
    path_item: dict[str, Any]

    @property
    def operation_id(self) -> str:
        """The operationId, or a stable name derived from method and path."""
        value = self.operation.get("operationId")
        return value if isinstance(value, str) and value else self.derived_name

    @property
    def derived_name(self) -> str:
        """`get_workspaces_by_workspace_id` for `GET /workspaces/{workspace_id}`."""
        return names.handler_name_from_route(self.method, self.path)

    @property
    def tag(self) -> str | None:
        """The first tag, which picks the handler module."""
        tags = self.operation.get("tags")
        if isinstance(tags, list) and tags and isinstance(tags[0], str):
            return tags[0]
        return None

    @property
    def handler_module(self) -> str:
        """The tag as a module name; `default` when untagged."""
        return names.identifier(self.tag) if self.tag else "default"

    @property
    def handler_name(self) -> str:
        """The operationId as a function name."""
        return names.identifier(self.operation_id)

    @property
    def label(self) -> str:
        """`GET /pets`, for messages."""
        return f"{self.method.upper()} {self.path}"


@dataclass(frozen=True)
class ParameterSite:
    """A parameter in effect for an operation, and the pointer where it is used."""

    value: dict[str, Any]
    pointer: str
    ref: str | None = None  # the `$ref` it was written as, if it was one

    @property
    def name(self) -> str:
        """The parameter's name as in the spec."""
        return str(self.value.get("name", ""))

    @property
    def location(self) -> str:
        """`path`, `query`, `header` or `cookie`."""
        return str(self.value.get("in", ""))


def iter_operations(document: dict[str, Any], resolver: Resolver) -> Iterator[OperationSite]:
    """Every operation, sorted by path and then method."""
    paths = document.get("paths")
    if not isinstance(paths, dict):
        return
    for path in sorted(paths):
        pointer = jsonpointer.child("/paths", path)
        try:
            path_item, _ = resolver.deref(paths[path], pointer)
        except RefError:
            continue
        if not isinstance(path_item, dict):
            continue
        for method in HTTP_METHODS:
            operation = path_item.get(method)
            if isinstance(operation, dict):
                site_pointer = jsonpointer.child(pointer, method)
                yield OperationSite(path, method, site_pointer, operation, path_item)


def parameters(site: OperationSite, resolver: Resolver) -> list[ParameterSite]:
    """Path-item parameters overridden per operation by (name, in); unresolvable ones skipped."""
    merged: dict[tuple[str, str], ParameterSite] = {}
    path_item_pointer = jsonpointer.parent(site.pointer)
    for owner, owner_pointer in (
        (site.path_item, path_item_pointer),
        (site.operation, site.pointer),
    ):
        declared = owner.get("parameters")
        if not isinstance(declared, list):
            continue
        for index, item in enumerate(declared):
            pointer = f"{owner_pointer}/parameters/{index}"
            try:
                value, _ = resolver.deref(item, pointer)
            except RefError:
                continue
            if isinstance(value, dict):
                ref = item["$ref"] if is_ref(item) else None
                parameter = ParameterSite(value, pointer, ref)
                merged[(parameter.name, parameter.location)] = parameter
    return list(merged.values())


def security(site: OperationSite, document: dict[str, Any]) -> tuple[list[Any], str]:
    """The security requirements in effect (operation overrides document) and their pointer."""
    if "security" in site.operation:
        value, pointer = site.operation["security"], jsonpointer.child(site.pointer, "security")
    else:
        value, pointer = document.get("security", []), "/security"
    return (value if isinstance(value, list) else []), pointer


def security_alternatives(requirements: list[Any]) -> tuple[tuple[str, ...], ...]:
    """Requirement objects as alternatives of scheme names that must all hold."""
    return tuple(
        tuple(sorted(requirement)) for requirement in requirements if isinstance(requirement, dict)
    )


def security_scopes(requirements: list[Any]) -> tuple[dict[str, tuple[str, ...]], ...]:
    """Per alternative (as `security_alternatives`), the scopes each scheme asks for; schemes
    without scopes (everything but oauth2 and openIdConnect) are left out."""
    return tuple(
        {
            name: tuple(str(scope) for scope in scopes)
            for name, scopes in sorted(requirement.items())
            if isinstance(scopes, list) and scopes
        }
        for requirement in requirements
        if isinstance(requirement, dict)
    )


def template_names(path: str) -> list[str]:
    """The variables of a path template, in order: `/a/{x}.{y}` → `["x", "y"]`."""
    return PATH_TEMPLATE.findall(path)
