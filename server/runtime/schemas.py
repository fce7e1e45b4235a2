"""Compiled JSON Schema validators over the generated component bundle.

Every schema is compiled once, at start-up, with jsonschema-rs (Draft 2020-12: the generator
has already normalised OpenAPI 3.0 dialect). ``$ref``s resolve inside ``schemas.json``, which
is handed to jsonschema-rs once, as one ``Registry`` every validator shares: a validator embeds
only the schema it was made for, never a copy of the components (with 1,500 components and a
few hundred validators, copies cost gigabytes and a minute of start-up).

One difference survives normalisation: in OpenAPI 3.0 (JSON Schema draft Wright-00) an
``integer`` is a number written without a fraction, so ``1.0`` is not one; from draft 6 on (and
in OpenAPI 3.1) it is. For a package generated from a 3.0 document, every ``type: integer``
gets the extra keyword ``x-gantry-oas30-integer``, which refuses floats.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from importlib import resources
from types import ModuleType
from typing import Any

import jsonschema_rs

from server.runtime.errors import FieldError

# A problem's ``errors`` hold at most this many failures (the Problem schema's maxItems).
MAX_FIELD_ERRORS = 100

JsonSchema = Mapping[str, Any]


class SchemaBundle:
    """The normalised component schemas of one generated package, and validators over them."""

    def __init__(self, components: Mapping[str, Any], *, oas30: bool = False) -> None:
        self.components = components
        self.oas30 = oas30
        schemas: Mapping[str, Any] = components.get("schemas", {})
        self._schemas = schemas  # as generated: what ``resolve`` returns
        self._compiled_schemas = _strict_integers(schemas) if oas30 else schemas
        self._registry: jsonschema_rs.Registry | None = None

    @classmethod
    def from_package(cls, package: ModuleType) -> SchemaBundle:
        """Load ``schemas.json`` beside the generated package's modules (and, from its
        ``openapi.json``, whether the source document was OpenAPI 3.0)."""
        folder = resources.files(package)
        document = json.loads(folder.joinpath("schemas.json").read_text(encoding="utf-8"))
        spec = folder.joinpath("openapi.json")
        oas30 = spec.is_file() and _OAS30.search(spec.read_text(encoding="utf-8")) is not None
        return cls(document.get("components", {}), oas30=oas30)

    def resolve(self, schema: JsonSchema) -> JsonSchema:
        """Follow ``#/components/schemas/…`` references until a concrete schema is reached."""
        seen: set[str] = set()
        while "$ref" in schema and isinstance(schema["$ref"], str):
            ref = schema["$ref"]
            if ref in seen or not ref.startswith("#/components/schemas/"):
                break
            seen.add(ref)
            target = self._schemas.get(ref.rsplit("/", 1)[-1])
            if target is None:
                break
            schema = target
        return schema

    def compile(self, schema: JsonSchema) -> CompiledSchema:
        """Compile ``schema`` (which may reference components) into a reusable validator."""
        root = _in_registry(_strict_integers(schema) if self.oas30 else schema)
        return CompiledSchema(
            jsonschema_rs.Draft202012Validator(
                root,
                validate_formats=True,
                keywords={OAS30_INTEGER: _Oas30Integer} if self.oas30 else None,
                registry=self.registry,
            )
        )

    @property
    def registry(self) -> jsonschema_rs.Registry:
        """The components as one jsonschema-rs resource (at ``COMPONENTS_URI``), made once and
        shared by every validator compiled from this bundle."""
        if self._registry is None:
            document = {"components": {"schemas": self._compiled_schemas}}
            self._registry = jsonschema_rs.Registry(
                [(COMPONENTS_URI, document)], draft=jsonschema_rs.Draft202012
            )
        return self._registry


# Where the components live in the registry; local ``#/components/…`` references of a schema
# being compiled are pointed there (those inside the components resolve in their own document).
COMPONENTS_URI = "urn:gantry:components"
_LOCAL_COMPONENTS = "#/components/"
# Keywords whose values are instances, where a ``$ref`` member is data.
_INSTANCE_KEYWORDS = frozenset({"const", "default", "enum", "example", "examples"})


def _in_registry(schema: Any) -> Any:
    """A copy of ``schema`` whose local references to the components name the registry's."""
    if isinstance(schema, list):
        return [_in_registry(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    copied = {
        key: value if key in _INSTANCE_KEYWORDS else _in_registry(value)
        for key, value in schema.items()
    }
    ref = copied.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_COMPONENTS):
        copied["$ref"] = COMPONENTS_URI + ref
    return copied


# ``"openapi": "3.0.x"`` near the top of the generated openapi.json.
_OAS30 = re.compile(r'"openapi"\s*:\s*"3\.0\.')
OAS30_INTEGER = "x-gantry-oas30-integer"


def _strict_integers(schema: Any) -> Any:
    """A copy of ``schema`` in which every integer-only ``type`` also carries ``OAS30_INTEGER``."""
    if isinstance(schema, list):
        return [_strict_integers(item) for item in schema]
    if not isinstance(schema, Mapping):
        return schema
    copied = {key: _strict_integers(value) for key, value in schema.items()}
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "integer" in kinds and "number" not in kinds:
        copied[OAS30_INTEGER] = True
    return copied


class _Oas30Integer:
    """Custom keyword: a float (``1.0``) is not an OpenAPI 3.0 integer."""

    def __init__(self, parent_schema: Any, value: Any, schema_path: Any) -> None:
        self.enabled = bool(value)

    def validate(self, instance: Any) -> None:
        if self.enabled and isinstance(instance, float):
            raise ValueError(f'{instance!r} is not of type "integer"')


class CompiledSchema:
    """A compiled validator that reports failures as ``FieldError``s under a location prefix."""

    __slots__ = ("_validator", "check")

    def __init__(self, validator: Any) -> None:
        self._validator = validator
        self.check: Callable[[Any], bool] = validator.is_valid  # ``is_valid`` without a wrapper

    def is_valid(self, instance: Any) -> bool:
        """Whether ``instance`` satisfies the schema."""
        return bool(self._validator.is_valid(instance))

    def errors(self, instance: Any, location: str) -> list[FieldError]:
        """Every failure, with ``field`` as ``location`` plus the JSON path inside the instance,
        sorted by field then message."""
        found = []
        for error in self._validator.iter_errors(instance):
            field = location
            for part in error.instance_path:
                field += f"[{part}]" if isinstance(part, int) else f".{part}"
            message = error.message
            if isinstance(error.instance, str):
                message = _without_value(message, error.instance)
            if len(message) > 300 or not message.isascii():
                message = _safe_message(message)
            found.append(FieldError(field, message))
        found.sort()
        return found[:MAX_FIELD_ERRORS]


def _without_value(message: str, value: str) -> str:
    """``message`` without the string it refused: the validator cannot know a password or an
    API key from a name, and an error must never echo a secret (into the response, or logs)."""
    quoted = json.dumps(value, ensure_ascii=False)
    if message.startswith(quoted):
        return "The value" + message[len(quoted) :]
    return message.replace(quoted, "the value")


@lru_cache(maxsize=256)
def _clip(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."


def _safe_message(message: Any) -> str:
    # Messages echo the offending value; keep them printable and bounded.
    text = str(message)
    if not text.isascii():  # only non-ASCII text can hold lone surrogates
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 300 else _clip(text)
