"""Compiled JSON Schema validators over the generated component bundle.

Every schema is compiled once, at start-up, with jsonschema-rs (Draft 2020-12: the generator
has already normalised OpenAPI 3.0 dialect). ``$ref``s resolve inside ``schemas.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from importlib import resources
from types import ModuleType
from typing import Any

import jsonschema_rs

from server.runtime.errors import FieldError

JsonSchema = Mapping[str, Any]


class SchemaBundle:
    """The normalised component schemas of one generated package, and validators over them."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self.components = components
        self._schemas: Mapping[str, Any] = components.get("schemas", {})

    @classmethod
    def from_package(cls, package: ModuleType) -> SchemaBundle:
        """Load ``schemas.json`` beside the generated package's modules."""
        text = resources.files(package).joinpath("schemas.json").read_text(encoding="utf-8")
        document = json.loads(text)
        return cls(document.get("components", {}))

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
        root = dict(schema)
        if self._schemas:
            root["components"] = {"schemas": self._schemas}
        return CompiledSchema(jsonschema_rs.Draft202012Validator(root, validate_formats=True))


class CompiledSchema:
    """A compiled validator that reports failures as ``FieldError``s under a location prefix."""

    __slots__ = ("_validator",)

    def __init__(self, validator: Any) -> None:
        self._validator = validator

    def is_valid(self, instance: Any) -> bool:
        """Whether ``instance`` satisfies the schema."""
        return bool(self._validator.is_valid(instance))

    def errors(self, instance: Any, location: str) -> list[FieldError]:
        """Every failure, with ``field`` as ``location`` plus the JSON path inside the instance."""
        found: list[FieldError] = []
        for error in self._validator.iter_errors(instance):
            field = location
            for part in error.instance_path:
                field += f"[{part}]" if isinstance(part, int) else f".{part}"
            found.append(FieldError(field=field, message=_safe_message(error.message)))
        found.sort(key=_field_and_message)
        return found


def _field_and_message(error: FieldError) -> tuple[str, str]:
    return error.field, error.message


def _path_part(part: Any) -> str:
    return f"[{part}]" if isinstance(part, int) else f".{part}"


@lru_cache(maxsize=256)
def _clip(message: str) -> str:
    return message if len(message) <= 300 else message[:297] + "..."


def _safe_message(message: Any) -> str:
    # Messages echo the offending value; keep them printable and bounded.
    text = str(message)
    if not text.isascii():  # only non-ASCII text can hold lone surrogates
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 300 else _clip(text)
