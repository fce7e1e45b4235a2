"""Validate the document against the official OpenAPI 3.0/3.1 JSON Schemas, with jsonschema-rs.

The schemas in `oas/` are the OpenAPI Initiative's (3.0: 2021-09-28, 3.1: 2022-10-07). Each is
compiled once per process; validating a 2,000-operation document takes milliseconds, where
openapi-spec-validator took over a minute. The 3.1 schema leaves Schema Objects open, so each
one is also checked against the JSON Schema 2020-12 meta-schema (3.0's schema describes them).
What neither can see (duplicate operationIds, path parameters, `$ref`s) is `lint`'s job.

Every error is placed at the deepest node that explains it: a failed `oneOf` (a parameter that is
neither a Parameter nor a Reference Object) is replaced by its most specific branch error.
`analysis` validates per path item, and keeps the results in the memo.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import jsonpointer

_OAS = Path(__file__).with_name("oas")
_MAX_MESSAGE = 200
_MAX_QUOTED = 60
_VERDICT = re.compile(
    r"^(.*?) (is not .*|is a required property|has non-unique .*|is (?:less|more|longer|shorter) .*|is too .*)$"
)
_META_2020_12 = {"$ref": "https://json-schema.org/draft/2020-12/schema"}
# Members of an OpenAPI object whose values map names to objects of one kind.
_NAME_MAPS = frozenset(
    {
        "callbacks",
        "content",
        "encoding",
        "examples",
        "headers",
        "links",
        "parameters",
        "pathItems",
        "paths",
        "requestBodies",
        "responses",
        "securitySchemes",
        "webhooks",
    }
)
_LITERALS = frozenset({"example", "examples", "default", "enum", "const", "value"})


def run_validation(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(pointer, message) for every problem, sorted."""
    version = document.get("openapi")
    family = _family(version)
    if family is None:
        message = f"'openapi' must be a 3.0.x or 3.1.x version string, not {version!r}"
        return [("/openapi" if "openapi" in document else "", message)]
    found: set[tuple[str, str]] = set()
    for error in _document_validator(family).iter_errors(document):
        found.update(_describe(error))
    if family == "3.1":
        meta = _meta_validator()
        for pointer, schema in iter_schema_objects(document):
            for error in meta.iter_errors(schema):
                found.update((pointer + where, message) for where, message in _describe(error))
    return sorted(found)


def _family(version: Any) -> str | None:
    if isinstance(version, str):
        for family in ("3.0", "3.1"):
            if re.fullmatch(re.escape(family) + r"\.\d+(-.+)?", version):
                return family
    return None


@functools.cache
def _document_validator(family: str) -> Any:
    import jsonschema_rs

    schema = json.loads((_OAS / f"{family}.json").read_text(encoding="utf-8"))
    return jsonschema_rs.validator_for(schema)


@functools.cache
def _meta_validator() -> Any:
    import jsonschema_rs

    return jsonschema_rs.Draft202012Validator(_META_2020_12)


def iter_schema_objects(document: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Every Schema Object of the document, outermost only, with its pointer."""
    components = document.get("components")
    schemas = components.get("schemas") if isinstance(components, dict) else None
    if isinstance(schemas, dict):
        for name, schema in schemas.items():
            yield jsonpointer.join(["components", "schemas", name]), schema
    stack: list[tuple[str, Any, bool]] = [("", document, False)]
    while stack:
        pointer, node, is_name_map = stack.pop()
        if isinstance(node, list):
            stack.extend((f"{pointer}/{i}", item, False) for i, item in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        for name, value in node.items():
            at = jsonpointer.child(pointer, name)
            if is_name_map:
                stack.append((at, value, False))
            elif name == "schema":
                yield at, value
            elif name == "components" and pointer == "":
                rest = (
                    {k: v for k, v in value.items() if k != "schemas"}
                    if isinstance(value, dict)
                    else {}
                )
                stack.append((at, rest, False))
            elif name not in _LITERALS and not name.startswith("x-"):
                stack.append((at, value, name in _NAME_MAPS))


@dataclass(frozen=True)
class _Leaf:
    """One explained failure: where (instance path), what, and of which kind."""

    path: tuple[str, ...]
    message: str
    kind: str
    options: tuple[Any, ...] = ()  # enum: the allowed values; required: the property


def _describe(error: Any) -> list[tuple[str, str]]:
    found = []
    for leaf in _explain(error):
        message = " ".join(leaf.message.split())
        verdict = _VERDICT.match(message)
        if verdict and len(verdict.group(1)) > _MAX_QUOTED:  # don't repeat a whole object back
            message = "the value " + verdict.group(2)
        if len(message) > _MAX_MESSAGE:
            message = message[: _MAX_MESSAGE - 1] + "…"
        found.append((jsonpointer.join(leaf.path), message))
    return found


def _explain(error: Any) -> list[_Leaf]:
    """The failures that explain `error`, chosen deterministically.

    A failed `oneOf`/`anyOf` is explained by one of its branches: a branch that only says the
    node is not a Reference Object explains nothing; the branch whose failures go deepest wins,
    a wrong `type` at its deepest level counting against it. When the deepest failures of the
    best branches are `enum` (or `required`) failures at one place, they are merged:
    `"qry" is not one of "cookie", "header", "path", "query"`.
    """
    path = tuple(str(part) for part in error.instance_path)
    context = getattr(error.kind, "context", None)
    if not context:
        return [_leaf(error, path)]
    branches = []
    for branch in context:
        leaves = [
            leaf
            for sub in branch
            if not _is_reference_hint(sub, len(path))
            for leaf in _explain(sub)
        ]
        if leaves:
            branches.append(leaves)
    if not branches:
        return [_leaf(error, path)]
    best_depth = max(len(leaf.path) for leaves in branches for leaf in leaves)
    deepest = [
        [leaf for leaf in leaves if len(leaf.path) == best_depth]
        for leaves in branches
        if any(len(leaf.path) == best_depth for leaf in leaves)
    ]
    merged = _merged([leaf for leaves in deepest for leaf in leaves])
    if merged is not None:
        return [merged]
    ranked = sorted(
        (leaves for leaves in branches if any(len(leaf.path) == best_depth for leaf in leaves)),
        key=lambda leaves: (
            all(leaf.kind == "type" for leaf in leaves if len(leaf.path) == best_depth),
            len(leaves),
            [(leaf.path, leaf.message) for leaf in leaves],
        ),
    )
    return ranked[0]


def _merged(leaves: list[_Leaf]) -> _Leaf | None:
    """One leaf for several `enum` (or `required`) failures at the same place."""
    if len(leaves) < 2 or len({leaf.path for leaf in leaves}) != 1:
        return None
    kinds = {leaf.kind for leaf in leaves}
    if kinds == {"enum"}:
        options = sorted({json.dumps(o) for leaf in leaves for o in leaf.options})
        instance = leaves[0].message.split(" is not one of ")[0]
        return _Leaf(leaves[0].path, f"{instance} is not one of {', '.join(options)}", "enum")
    if kinds == {"required"}:
        names = sorted({json.dumps(o) for leaf in leaves for o in leaf.options})
        return _Leaf(leaves[0].path, f"one of {', '.join(names)} is required", "required")
    return None


def _leaf(error: Any, path: tuple[str, ...]) -> _Leaf:
    kind = error.kind.name
    details = error.kind.as_dict()
    message = str(error.message)
    if kind == "enum":
        options = tuple(details.get("options") or ())
        if len(options) <= 12:
            instance = message.split(" is not one of ")[0]
            message = f"{instance} is not one of {', '.join(json.dumps(o) for o in options)}"
        return _Leaf(path, message, kind, options)
    if kind == "required":
        return _Leaf(path, message, kind, (details.get("property"),))
    if kind == "additionalProperties":
        unexpected = details.get("unexpected") or []
        if len(unexpected) == 1:  # point at the unexpected member itself
            return _Leaf((*path, str(unexpected[0])), message, kind)
    return _Leaf(path, message, kind)


def _is_reference_hint(error: Any, depth: int) -> bool:
    """`"$ref" is a required property` at the node itself: it is not a Reference Object."""
    return (
        len(list(error.instance_path)) == depth
        and error.kind.name == "required"
        and error.kind.as_dict().get("property") == "$ref"
    )
