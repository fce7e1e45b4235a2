"""Validate the document against the official OpenAPI 3.0/3.1 JSON Schemas, with jsonschema-rs.

The schemas in `oas/` are the OpenAPI Initiative's (3.0: 2021-09-28, 3.1: 2022-10-07). Each is
compiled once per process; validating a 2,000-operation document takes milliseconds, where
openapi-spec-validator took over a minute. The 3.1 schema leaves Schema Objects open, so each
one is also checked against the JSON Schema 2020-12 meta-schema (3.0's schema describes them).
What neither can see (duplicate operationIds, path parameters, `$ref`s) is `lint`'s job.

Every error is placed at the deepest node that explains it: a failed `oneOf` (a parameter that is
neither a Parameter nor a Reference Object) is replaced by its most specific branch error.
Results are cached by the sha256 of the spec's bytes.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import jsonpointer
from .cache import Cache, key, module_digest
from .diagnostics import Diagnostic

_OAS = Path(__file__).with_name("oas")
_CODE = module_digest(__file__)  # how errors are described is part of every cache key
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


def validate(document: dict[str, Any], sha256: str, cache: Cache) -> list[Diagnostic]:
    """The OpenAPI-schema errors of the document (call only when every `$ref` resolves)."""
    cache_key = key("validate", _CODE, sha256)
    cached = cache.get("validate", cache_key)
    if cached is None:
        found = run_validation(document)
        cache.put("validate", cache_key, json.dumps(found))
    else:
        found = [tuple(item) for item in json.loads(cached)]
    return [Diagnostic.error(pointer, message) for pointer, message in found]


def run_validation(document: dict[str, Any]) -> list[tuple[str, str]]:
    """(pointer, message) for every problem, sorted."""
    version = document.get("openapi")
    family = _family(version)
    if family is None:
        message = f"'openapi' must be a 3.0.x or 3.1.x version string, not {version!r}"
        return [("/openapi" if "openapi" in document else "", message)]
    found = {_describe(error) for error in _document_validator(family).iter_errors(document)}
    if family == "3.1":
        meta = _meta_validator()
        for pointer, schema in iter_schema_objects(document):
            for error in meta.iter_errors(schema):
                where, message = _describe(error)
                found.add((pointer + where, message))
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


def _describe(error: Any) -> tuple[str, str]:
    path, message = _explain(error)
    pointer = jsonpointer.join(str(part) for part in path)
    message = " ".join(message.split())
    verdict = _VERDICT.match(message)
    if verdict and len(verdict.group(1)) > _MAX_QUOTED:  # don't repeat a whole object back
        message = "the value " + verdict.group(2)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return pointer, message


def _explain(error: Any) -> tuple[list[Any], str]:
    """The path and message that best explain `error`, chosen deterministically.

    A failed `oneOf`/`anyOf` is explained by its branches' errors: branches that only say the
    node is not a Reference Object explain nothing, a wrong `type` explains less than any other
    failure, and the deepest errors win. Ties of `enum` or `required` errors are merged
    (`"qry" is not one of "cookie", "header", "path", "query"`).
    """
    path = list(error.instance_path)
    context = getattr(error.kind, "context", None)
    if not context:
        return path, _message(error)
    candidates = list(_leaves(error))
    if not candidates:
        return path, str(error.message)
    best = min(_rank(c) for c in candidates)
    tied = sorted({(str(c.message), id(c)): c for c in candidates if _rank(c) == best}.items())
    winners = [c for _, c in tied]
    first = winners[0]
    first_path = list(first.instance_path)
    kinds = {w.kind.name for w in winners}
    same_place = all(list(w.instance_path) == first_path for w in winners)
    if len(winners) > 1 and same_place and kinds == {"enum"}:
        options = sorted({json.dumps(o) for w in winners for o in w.kind.as_dict()["options"]})
        instance = str(first.message).split(" is not one of ")[0]
        return first_path, f"{instance} is not one of {', '.join(options)}"
    if len(winners) > 1 and same_place and kinds == {"required"}:
        names = sorted({json.dumps(w.kind.as_dict()["property"]) for w in winners})
        return first_path, f"one of {', '.join(names)} is required"
    return first_path, _message(first)


def _message(error: Any) -> str:
    """jsonschema-rs's message; an `enum` error lists every allowed value (up to a dozen)."""
    if error.kind.name == "enum":
        options = error.kind.as_dict()["options"]
        if isinstance(options, list) and len(options) <= 12:
            instance = str(error.message).split(" is not one of ")[0]
            return f"{instance} is not one of {', '.join(json.dumps(o) for o in options)}"
    return str(error.message)


def _leaves(error: Any) -> Iterator[Any]:
    """The errors inside a failed `oneOf`/`anyOf`, nested ones flattened, minus the
    "not a Reference Object" ones."""
    depth = len(list(error.instance_path))
    for branch in error.kind.context:
        for sub in branch:
            if getattr(sub.kind, "context", None):
                yield from _leaves(sub)
            elif not (
                len(list(sub.instance_path)) == depth
                and sub.kind.name == "required"
                and sub.kind.as_dict().get("property") == "$ref"
            ):
                yield sub


def _rank(error: Any) -> tuple[int, int, tuple[str, ...]]:
    path = tuple(str(part) for part in error.instance_path)
    return (-len(path), int(error.kind.name == "type"), path)
