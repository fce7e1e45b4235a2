"""Every problem of a document, found per unit (path item) and for the shared part, so that the
findings for an unchanged unit can be kept between runs (see `units` and `memo`).

A finding is a plain tuple, as the memo stores it. The comparisons between operations
(duplicate operationIds…) are made afresh each run from each unit's `SiteSummary`s. Whether the
OpenAPI-schema findings count depends on the whole document: the validator is only trusted
when every `$ref` resolves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple
from typing import Any

from . import jsonpointer, lint, servable, validate
from .diagnostics import Diagnostic, Severity
from .resolve import Resolver, iter_refs
from .units import Unit, Units, references_paths
from .walk import iter_operations

Finding = tuple[str, str, str]  # (severity, pointer, message)


def analyse_shared(units: Units, resolver: Resolver) -> dict[str, Any]:
    """The findings of the shared part (its path items left out)."""
    shared = units.shared
    refs, refs_resolve = lint.check_refs(shared, resolver)
    openapi = str(shared.get("openapi", ""))
    servers = [
        *servable.security_schemes(shared),
        *servable.null_defaults(shared, "", openapi=openapi),
    ]
    return {
        "findings": _findings([*refs, *_nullable(units, shared), *servers]),
        "refs_resolve": refs_resolve,
        "validation": validate.run_validation(shared),
        "references_paths": any(references_paths(ref) for _, ref in iter_refs(shared)),
    }


def analyse_units(
    units: Units, chosen: Iterable[Unit], document: dict[str, Any], resolver: Resolver
) -> dict[str, dict[str, Any]]:
    """The findings of each chosen unit, by path; `document` holds at least those units."""
    chosen = list(chosen)
    sites: dict[str, list[Any]] = {unit.path: [] for unit in chosen}
    for site in iter_operations(document, resolver):
        if site.path in sites:
            sites[site.path].append(site)
    openapi = str(units.shared.get("openapi", ""))
    validation = _validation(chosen, units.shared)
    results = {}
    for unit in chosen:
        refs, refs_resolve = lint.check_refs(unit.value, resolver, unit.pointer)
        found = [*refs, *_nullable(units, unit.value, unit.pointer, openapi)]
        found += servable.path_key(unit.path)
        found += servable.null_defaults(unit.value, unit.pointer, openapi=openapi)
        for site in sites[unit.path]:
            found += lint.lint_operation(site, document, resolver, units.profile)
        results[unit.path] = {
            "findings": _findings(found),
            "refs_resolve": refs_resolve,
            "validation": validation[unit.path],
            "references_paths": any(
                references_paths(ref) for _, ref in iter_refs(unit.value, unit.pointer)
            ),
            "sites": [astuple(lint.SiteSummary.of(site)) for site in sites[unit.path]],
        }
    return results


def diagnostics(
    units: Units, shared: dict[str, Any], per_unit: list[dict[str, Any]]
) -> list[Diagnostic]:
    """Every problem: the findings of the parts, the comparisons between operations, and the
    OpenAPI-schema findings when every `$ref` resolves."""
    parts = [shared, *per_unit]
    found = [
        Diagnostic(Severity(severity), pointer, message)
        for part in parts
        for severity, pointer, message in part["findings"]
    ]
    summaries = [lint.SiteSummary(*site) for part in per_unit for site in part["sites"]]
    found += lint.lint_across([unit.path for unit in units.units], summaries)
    if all(part["refs_resolve"] for part in parts):  # the validator cannot cope otherwise
        found += [Diagnostic.error(p, m) for part in parts for p, m in part["validation"]]
    return found


def _validation(chosen: list[Unit], shared: dict[str, Any]) -> dict[str, list[tuple[str, str]]]:
    """The OpenAPI-schema findings of each path item, by path, from one document of those path
    items alone. A finding about `paths` as a whole cannot be told apart: then each path item
    is validated on its own."""
    found: dict[str, list[tuple[str, str]]] = {unit.path: [] for unit in chosen}
    for pointer, message in validate.run_validation(_alone(chosen, shared)):
        parts = jsonpointer.split(pointer)
        if parts[:1] != ["paths"]:
            continue  # about the stand-in `info`: not the path items' business
        if len(parts) < 2 or parts[1] not in found:
            if len(chosen) > 1:
                return {u.path: _validation([u], shared)[u.path] for u in chosen}
            found[chosen[0].path].append((pointer, message))
            continue
        found[parts[1]].append((pointer, message))
    return found


def _alone(chosen: list[Unit], shared: dict[str, Any]) -> dict[str, Any]:
    return {
        "openapi": shared.get("openapi"),
        "info": {"title": "", "version": ""},
        "paths": {unit.path: unit.value for unit in chosen},
    }


def _nullable(
    units: Units, node: Any, pointer: str = "", openapi: str | None = None
) -> list[Diagnostic]:
    if not units.may_use_nullable:
        return []
    return lint.lint_nullable(node, pointer, openapi=openapi)


def _findings(found: list[Diagnostic]) -> list[Finding]:
    return [(d.severity.value, d.pointer, d.message) for d in found]
