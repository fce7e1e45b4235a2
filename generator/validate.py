"""Validate the document against the OpenAPI schema with openapi-spec-validator.

The validator reports most errors without saying where they are, and checks each schema only up
to its first error (which one depends on the hash seed). So each keyword validator is wrapped to
stamp its errors with the location it was checking, and schemas are checked for all their errors,
in a fixed order. Results are cached by the sha256 of the spec's bytes: validation is the slowest
step of generation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import Any

from . import jsonpointer
from .cache import Cache, installed_digest, key, module_digest
from .diagnostics import Diagnostic
from .resolve import RefError, Resolver, is_ref

# Our linter says the same, with better locations and wording.
_COVERED_BY_LINT = frozenset({"DuplicateOperationIDError", "UnresolvableParameterError"})
_MAX_MESSAGE = 200
_CODE = module_digest(__file__)  # how errors are described is part of every cache key
_MAX_QUOTED = 60
_VERDICT = re.compile(
    r"^(.*?) (is not .*|is a required property|has non-unique elements|is too .*)$"
)


def validate(document: dict[str, Any], sha256: str, cache: Cache) -> list[Diagnostic]:
    """The OpenAPI-schema errors of the document (call only when every `$ref` resolves)."""
    cache_key = key("validate", installed_digest(), _CODE, sha256)
    cached = cache.get("validate", cache_key)
    if cached is None:
        found = _run_validator(document)
        cache.put("validate", cache_key, json.dumps(found))
    else:
        found = json.loads(cached)
    return [Diagnostic.error(pointer, message) for pointer, message in found]


def _run_validator(document: dict[str, Any]) -> list[tuple[str, str]]:
    from openapi_spec_validator.shortcuts import get_validator_cls
    from openapi_spec_validator.validation.exceptions import ValidatorDetectError

    try:
        base = get_validator_cls(document)
    except ValidatorDetectError:
        return [("", "not an OpenAPI document: 'openapi' must be a 3.x version string")]
    validator = _locating(base)(document)
    resolver = Resolver(document)
    found: set[tuple[str, str]] = set()
    try:
        for error in validator.iter_errors():
            if type(error).__name__ not in _COVERED_BY_LINT:
                found.add(_describe(error, document, resolver))
    except Exception as exc:  # the validator gives up on some broken documents
        found.add(("", f"openapi-spec-validator stopped: {type(exc).__name__}: {exc}"))
    return sorted(found)


def _locating(base: type[Any]) -> Callable[[dict[str, Any]], Any]:
    """A subclass of `base` whose keyword validators remember where each error was found."""
    keyword_validators = {
        name: _thorough(_stamping(cls)) if name == "schema" else _stamping(cls)
        for name, cls in base.keyword_validators.items()
    }
    name = "Locating" + base.__name__
    return type(name, (base,), {"keyword_validators": keyword_validators})


def _stamping(cls: type[Any]) -> type[Any]:
    """`cls` with errors stamped with the parts of the first location it was called with."""
    from jsonschema_path import SchemaPath

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        where = next((arg for arg in args if isinstance(arg, SchemaPath)), None)
        for error in cls.__call__(self, *args, **kwargs):
            yield _stamp(error, where.parts if where is not None else None)

    return type(cls.__name__, (cls,), {"__call__": __call__})


def _stamp(error: Any, parts: tuple[Any, ...] | None) -> Any:
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    if parts is None or hasattr(error, "gantry_base"):
        return error
    if not isinstance(error, OpenAPIValidationError):
        error = OpenAPIValidationError.create_from(error)
    error.gantry_base = tuple(parts)
    return error


def _thorough(cls: type[Any]) -> type[Any]:
    """A schema keyword validator that reports every meta-schema error of a schema, sorted."""

    def __call__(
        self: Any, schema: Any, require_properties: bool = True, meta_checked: bool = False
    ) -> Iterator[Any]:
        value = schema.read_value()
        checked = self.meta_checked_schema_ids
        if not meta_checked and isinstance(value, Mapping | bool) and id(value) not in checked:
            checked.append(id(value))  # the base class now skips its first-error-only check
            errors = _meta_errors(self._get_schema_checker(schema, value), value)
            if errors:
                for error in errors:
                    yield _stamp(error, schema.parts)
                return
        yield from cls.__call__(self, schema, require_properties, meta_checked)

    return type(cls.__name__, (cls,), {"__call__": __call__})


def _meta_errors(checker: Callable[[Any], None], value: Any) -> list[Any]:
    """Every error `checker` (a validator class's `check_schema`) would stop at the first of."""
    from jsonschema.validators import validator_for
    from openapi_schema_validator._specifications import REGISTRY

    if isinstance(checker, partial):
        owner, options = checker.func.__self__, dict(checker.keywords)  # type: ignore[attr-defined]
    else:
        owner, options = checker.__self__, {}  # type: ignore[attr-defined]
    options.setdefault("format_checker", owner.FORMAT_CHECKER)
    meta_validator_cls = validator_for(owner.META_SCHEMA, default=owner)
    meta_validator = meta_validator_cls(owner.META_SCHEMA, registry=REGISTRY, **options)
    return sorted(meta_validator.iter_errors(value), key=_order)


def _order(error: Any) -> tuple[Any, ...]:
    return (tuple(str(part) for part in error.absolute_path), str(error.message))


def _most_specific(error: Any) -> Any:
    """The error inside an `anyOf`/`oneOf` failure that best explains it, chosen deterministically."""
    from jsonschema.exceptions import best_match, relevance

    if not error.context:
        return error
    return best_match(error.context, key=lambda e: (relevance(e), _order(e)))


def _describe(error: Any, document: dict[str, Any], resolver: Resolver) -> tuple[str, str]:
    base = getattr(error, "gantry_base", ())
    error = _most_specific(error)
    parts = (*base, *error.absolute_path)
    message = " ".join(str(error.message).split("\n\n")[0].split())
    verdict = _VERDICT.match(message)
    if verdict and len(verdict.group(1)) > _MAX_QUOTED:  # don't repeat a whole object back
        message = "the value " + verdict.group(2)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return _real_pointer(document, parts, resolver), message


def _real_pointer(document: dict[str, Any], parts: tuple[Any, ...], resolver: Resolver) -> str:
    """The pointer of `parts` in the document, following `$ref`s the validator walked through."""
    node: Any = document
    pointer = ""
    for part in parts:
        if is_ref(node) and not (isinstance(node, dict) and part in node):
            try:
                node, pointer = resolver.lookup(node["$ref"])
            except RefError:
                return pointer
        if isinstance(node, dict) and str(part) in node:
            node, pointer = node[str(part)], jsonpointer.child(pointer, str(part))
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node, pointer = node[part], jsonpointer.child(pointer, part)
        else:
            break
    return pointer
