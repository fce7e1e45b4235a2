"""Our checks on top of the OpenAPI schema: every finding is a `Diagnostic`, all found in one run.

Most checks look at one operation (`lint_operation`); a few compare operations with each other
(`lint_across`, from a `SiteSummary` of each), so that an unchanged operation's findings can be
kept between runs while the comparisons are made afresh.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from . import conventions, jsonpointer, names, servable
from .diagnostics import Diagnostic
from .resolve import RefError, Resolver, iter_refs
from .walk import (
    PATH_TEMPLATE,
    OperationSite,
    ParameterSite,
    parameters,
    security,
    template_names,
)


def check_refs(node: Any, resolver: Resolver, pointer: str = "") -> tuple[list[Diagnostic], bool]:
    """A `$ref` that leads nowhere is an error; `node` is the document, or the part of it at
    `pointer`. With the problems, whether every reference resolves: a reference to another
    file is only still there when `bundle` could not follow it, and has said why."""
    problems = []
    resolves = True
    for at, ref in iter_refs(node, pointer):
        if not ref.startswith("#"):
            resolves = False
            continue
        try:
            resolver.lookup(ref)
        except RefError as exc:
            problems.append(Diagnostic.error(at, str(exc)))
    return problems, resolves and not problems


@dataclass(frozen=True)
class SiteSummary:
    """What `lint_across` needs of an operation."""

    pointer: str
    label: str
    declares_operation_id: bool
    operation_id: str
    handler_module: str
    handler_name: str

    @classmethod
    def of(cls, site: OperationSite) -> SiteSummary:
        """The summary of one operation."""
        declared = site.operation.get("operationId")
        return cls(
            site.pointer,
            site.label,
            isinstance(declared, str) and bool(declared),
            site.operation_id,
            site.handler_module,
            site.handler_name,
        )


def lint_across(paths: Iterable[str], sites: Iterable[SiteSummary]) -> list[Diagnostic]:
    """The problems that only show when operations (or paths) are compared with each other."""
    summaries = list(sites)
    return [*_operation_ids(summaries), *_handler_names(summaries), *_equivalent_paths(paths)]


def lint_operation(
    site: OperationSite, document: dict[str, Any], resolver: Resolver, profile: bool
) -> list[Diagnostic]:
    """The problems of one operation on its own."""
    params = parameters(site, resolver)
    return [
        *_missing_operation_id(site, profile),
        *_path_parameters(site, params),
        *_parameter_names(site, params),
        *servable.header_parameters(site, params),
        *_security(site, document, _security_scheme_names(document), profile),
        *_min_role(site, document, profile),
        *_pagination(site, params, resolver, profile),
    ]


def lint_nullable(node: Any, pointer: str = "", *, openapi: str | None = None) -> list[Diagnostic]:
    """`nullable` in a 3.1 document: the document, or the part of it at `pointer` (then the
    document's `openapi` version must be given)."""
    version = openapi if openapi is not None else str(node.get("openapi", ""))
    if version.startswith("3.0"):
        return []
    return list(_nullable_in_31(node, pointer))


def _convention(profile: bool, pointer: str, message: str) -> Iterator[Diagnostic]:
    """An error in a Gantry spec; nothing in anyone else's, where it would drown the real
    problems (see `conventions.gantry_profile`)."""
    if profile:
        yield Diagnostic.error(pointer, message)


def _missing_operation_id(site: OperationSite, profile: bool) -> Iterator[Diagnostic]:
    declared = site.operation.get("operationId")
    if not isinstance(declared, str) or not declared:
        message = f"{site.label} has no operationId; its handler is named {site.handler_name!r}"
        yield from _convention(profile, site.pointer, message)


def _operation_ids(sites: list[SiteSummary]) -> Iterator[Diagnostic]:
    first: dict[str, SiteSummary] = {}
    for site in sites:
        key = site.operation_id
        if key in first:
            other = first[key]
            pointer = site.pointer
            if site.declares_operation_id:
                pointer = jsonpointer.child(site.pointer, "operationId")
            yield Diagnostic.error(pointer, f"operationId {key!r} is also used by {other.label}")
        else:
            first[key] = site


def _handler_names(sites: list[SiteSummary]) -> Iterator[Diagnostic]:
    seen: dict[tuple[str, str], SiteSummary] = {}
    for site in sites:
        key = (site.handler_module, site.handler_name)
        other = seen.setdefault(key, site)
        if other is not site and other.operation_id != site.operation_id:
            message = (
                f"operationId {site.operation_id!r} gives the same handler "
                f"{key[0]}.{key[1]} as {other.operation_id!r} ({other.label})"
            )
            yield Diagnostic.error(site.pointer, message)


def _equivalent_paths(paths: Iterable[str]) -> Iterator[Diagnostic]:
    seen: dict[str, str] = {}
    for path in sorted(paths):
        shape = _shape(path)
        if shape in seen:
            message = f"path {path!r} is equivalent to {seen[shape]!r} (only the names differ)"
            yield Diagnostic.error(jsonpointer.child("/paths", path), message)
        else:
            seen[shape] = path


def _shape(path: str) -> str:
    """A path template with its variable names erased: `/a/{x}` → `/a/{}`."""
    return PATH_TEMPLATE.sub("{}", path)


def _path_parameters(site: OperationSite, params: list[ParameterSite]) -> Iterator[Diagnostic]:
    in_template = template_names(site.path)
    declared = {p.name for p in params if p.location == "path"}
    for name in sorted({n for n in in_template if in_template.count(n) > 1}):
        yield Diagnostic.error(
            site.pointer, f"path parameter {name!r} occurs twice in {site.path!r}"
        )
    for name in in_template:
        if name not in declared:  # placed at the path template that names it
            message = f"path parameter {name!r} of {site.label} is not declared"
            yield Diagnostic.error(jsonpointer.parent(site.pointer), message)
    for param in params:
        if param.location == "path" and param.name not in in_template:
            message = f"path parameter {param.name!r} does not occur in {site.path!r}"
            yield Diagnostic.error(param.pointer, message)


def _parameter_names(site: OperationSite, params: list[ParameterSite]) -> Iterator[Diagnostic]:
    seen: dict[str, ParameterSite] = {}
    for param in params:
        python_name = names.identifier(param.name)
        other = seen.setdefault(python_name, param)
        if other is not param:
            message = (
                f"parameters {other.name!r} ({other.location}) and {param.name!r} "
                f"({param.location}) of {site.label} share the Python name {python_name!r}"
            )
            yield Diagnostic.error(param.pointer, message)


def _security_scheme_names(document: dict[str, Any]) -> set[str]:
    components = document.get("components")
    schemes = components.get("securitySchemes") if isinstance(components, dict) else None
    return set(schemes) if isinstance(schemes, dict) else set()


def _security(
    site: OperationSite, document: dict[str, Any], schemes: set[str], profile: bool
) -> Iterator[Diagnostic]:
    requirements, pointer = security(site, document)
    for index, requirement in enumerate(requirements):
        if not isinstance(requirement, dict):
            continue
        for name in sorted(set(requirement) - schemes):
            message = f"security scheme {name!r} is not defined in components/securitySchemes"
            yield Diagnostic.error(f"{pointer}/{index}", message)
    secured = bool(requirements) and all(requirement for requirement in requirements)
    responses = site.operation.get("responses")
    statuses = set(responses) if isinstance(responses, dict) else set()
    if secured and "4XX" not in statuses:
        for status in ("401", "403"):
            if status not in statuses:
                message = f"secured operation {site.label} does not document a {status} response"
                pointer = jsonpointer.child(site.pointer, "responses")
                yield from _convention(profile, pointer, message)


def _min_role(site: OperationSite, document: dict[str, Any], profile: bool) -> Iterator[Diagnostic]:
    key = conventions.MIN_ROLE_KEY
    if key not in site.operation:
        if profile:
            yield Diagnostic.error(site.pointer, f"{site.label} has no {key}")
        return
    role = site.operation[key]
    pointer = jsonpointer.child(site.pointer, key)
    if role not in conventions.ROLES:
        allowed = "|".join(conventions.ROLES)
        yield Diagnostic.error(pointer, f"{key} {role!r} is not one of {allowed}")
        return
    requirements, _ = security(site, document)
    secured = bool(requirements) and all(requirement for requirement in requirements)
    if role == "public" and secured:
        message = f"{site.label} is {key} 'public' but its security requires credentials"
        yield Diagnostic.warning(pointer, message)
    if role != "public" and not requirements:
        message = f"{site.label} needs role {role!r} but its security is empty (public)"
        yield Diagnostic.warning(pointer, message)


def _pagination(
    site: OperationSite, params: list[ParameterSite], resolver: Resolver, profile: bool
) -> Iterator[Diagnostic]:
    for pointer, message in conventions.pagination(site, params, resolver).problems:
        yield from _convention(profile, pointer, message)


def _nullable_in_31(node: Any, pointer: str) -> Iterator[Diagnostic]:
    # `nullable` is only ever a keyword inside schemas; finding one anywhere else is harmless.
    stack: list[tuple[str, Any]] = [(pointer, node)]
    by_pointer: dict[str, Diagnostic] = {}
    while stack:
        pointer, node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("nullable"), bool):
                at = jsonpointer.child(pointer, "nullable")
                message = "'nullable' is not a keyword in OpenAPI 3.1; use type: [..., 'null']"
                by_pointer[at] = Diagnostic.warning(at, message)
            for key, value in node.items():
                if key not in ("example", "examples", "default", "enum", "const"):
                    stack.append((jsonpointer.child(pointer, key), value))
        elif isinstance(node, list):
            stack.extend((f"{pointer}/{i}", item) for i, item in enumerate(node))
    return iter(by_pointer.values())
