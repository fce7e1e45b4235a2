"""Request body parsing: pick the documented media type, decode, validate, build the model.

A ``BodyParser`` is compiled once per operation. JSON bodies are validated against the compiled
schema and, when the spec names a component schema, handed to the handler as the generated
pydantic model; form, multipart, text and binary bodies are decoded by their media type.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Request as WerkzeugRequest

from server.runtime.body_bytes import content_length, read_body
from server.runtime.errors import BadRequest, FieldError, UnsupportedMediaType
from server.runtime.json_body import check_json_charset, decode_json_body
from server.runtime.params import CoercionError, scalar_coercer
from server.runtime.schemas import CompiledSchema, SchemaBundle


def _essence(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _matches(pattern: str, actual: str) -> bool:
    if pattern in ("*/*", actual):
        return True
    if pattern.endswith("/*"):
        return actual.split("/", 1)[0] == pattern[:-2]
    return False


@dataclass(frozen=True, slots=True)
class _Media:
    media_type: str
    validator: CompiledSchema | None
    model: type[BaseModel] | None
    form_fields: dict[str, Any]  # property name -> (coercer, is_array) for form-like bodies
    is_json: bool  # a JSON media type (not a wildcard)
    is_valid: Callable[[Any], bool] | None  # the compiled validator's own check, no wrapper
    build: Callable[[Any], Any] | None  # the model's pydantic-core validator (model_validate)


# Distinct Content-Type values remembered per operation (the header is the client's choice).
_SELECT_CACHE_SIZE = 64


class BodyParser:
    """Decodes and validates the body of one operation."""

    def __init__(self, request_body: Any, bundle: SchemaBundle, models: ModuleType | None) -> None:
        self.required = bool(request_body.required)
        self._media: list[_Media] = []
        for media in request_body.content:
            model = getattr(models, media.model, None) if (models and media.model) else None
            model = model if isinstance(model, type) and issubclass(model, BaseModel) else None
            schema = media.schema
            validator = bundle.compile(schema) if schema is not None else None
            self._media.append(
                _Media(
                    media_type=media.media_type.lower(),
                    validator=validator,
                    model=model,
                    form_fields=_form_fields(schema, bundle) if schema is not None else {},
                    is_json=_is_json(media.media_type.lower()),
                    is_valid=validator.check if validator is not None else None,
                    # What ``model.model_validate(value)`` calls, minus its Python wrapper.
                    build=model.__pydantic_validator__.validate_python if model else None,
                )
            )
        self.media_types = tuple(m.media_type for m in self._media)
        self._selected: dict[str, _Media] = {}

    def _select(self, content_type: str) -> _Media:
        media = self._selected.get(content_type)
        if media is None:
            media = self._select_uncached(content_type)
            if len(self._selected) < _SELECT_CACHE_SIZE:  # bounded: clients pick the header
                self._selected[content_type] = media
        return media

    def _select_uncached(self, content_type: str) -> _Media:
        actual = _essence(content_type)
        for media in self._media:
            if media.media_type == actual:
                return media
        for media in self._media:
            if _matches(media.media_type, actual):
                return media
        raise UnsupportedMediaType(
            f"Content-Type {actual or '(none)'!r} is not accepted; "
            f"use one of: {', '.join(self.media_types)}."
        )

    def parse(self, request: WerkzeugRequest) -> Any:
        """The decoded body (a model, dict, list, str or bytes), or ``None`` when absent."""
        environ = request.environ  # the raw WSGI keys: what ``request.headers.get`` would read
        has_body = bool(content_length(request)) or environ.get("HTTP_TRANSFER_ENCODING")
        content_type = environ.get("CONTENT_TYPE", "")
        if not has_body and not content_type:
            if self.required:
                raise BadRequest("A request body is required.", errors=[_body_required()])
            return None
        media = self._select(content_type)
        if media.is_json or (media.media_type.endswith("/*") and _is_json(_essence(content_type))):
            return self._json(request, media)
        mt = media.media_type
        if mt in ("application/x-www-form-urlencoded", "multipart/form-data"):
            return self._form(request, media)
        data = read_body(request)
        if not data and self.required:
            raise BadRequest("A request body is required.", errors=[_body_required()])
        if mt.startswith("text/"):
            try:
                return data.decode(request.mimetype_params.get("charset", "utf-8"))
            except (UnicodeDecodeError, LookupError):
                raise BadRequest("The body is not valid text in its charset.") from None
        return data

    def _json(self, request: WerkzeugRequest, media: _Media) -> Any:
        data = read_body(request)
        if not data:
            if self.required:
                raise BadRequest("A request body is required.", errors=[_body_required()])
            return None
        check_json_charset(request.environ.get("CONTENT_TYPE", ""))
        return self._validate(decode_json_body(data), media)

    def _form(self, request: WerkzeugRequest, media: _Media) -> Any:
        value: dict[str, Any] = {}
        errors: list[FieldError] = []
        if any(not isinstance(k, str) for k in (*request.form, *request.files)):
            # werkzeug keys a multipart part whose name it cannot read as None.
            raise BadRequest(
                "A form part has no readable name.", errors=[FieldError("body", "unnamed part")]
            )
        for key in request.form:
            coerce, is_array = media.form_fields.get(key, (str, False))
            raw_values = request.form.getlist(key)
            try:
                value[key] = [coerce(v) for v in raw_values] if is_array else coerce(raw_values[-1])
            except CoercionError as exc:
                errors.append(FieldError(f"body.{key}", str(exc)))
        files: dict[str, FileStorage | list[FileStorage]] = {}
        for key in request.files:
            stored = request.files.getlist(key)
            _, is_array = media.form_fields.get(key, (str, False))
            files[key] = stored if is_array else stored[-1]
            # Validate file fields as the string (binary) they stand for.
            value[key] = ["<binary>"] * len(stored) if is_array else "<binary>"
        if errors:
            raise BadRequest("Invalid form fields.", errors=errors)
        self._check(value, media)
        value.update(files)
        return value

    def _validate(self, value: Any, media: _Media) -> Any:
        if media.is_valid is not None and not media.is_valid(value):
            assert media.validator is not None  # ``is_valid`` is its check
            raise _invalid_body(media.validator, value)  # listing every failure
        if media.build is None:
            return value
        try:
            return media.build(value)
        except ValidationError as exc:
            raise BadRequest("The body is invalid.", errors=_pydantic_errors(exc)) from None

    @staticmethod
    def _check(value: Any, media: _Media) -> None:
        if media.validator is not None and not media.validator.is_valid(value):
            raise _invalid_body(media.validator, value)


def _invalid_body(validator: CompiledSchema, value: Any) -> BadRequest:
    return BadRequest("The body is invalid.", errors=validator.errors(value, "body"))


def _body_required() -> FieldError:
    return FieldError("body", "is required")


def _pydantic_errors(exc: ValidationError) -> Iterable[FieldError]:
    for err in exc.errors(include_url=False, include_input=False):
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        yield FieldError(f"body{path}", str(err["msg"]))


def _form_fields(schema: Any, bundle: SchemaBundle) -> dict[str, Any]:
    schema = bundle.resolve(schema)
    fields: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        prop = bundle.resolve(prop)
        kinds = prop.get("type")
        is_array = kinds == "array" or (isinstance(kinds, list) and "array" in kinds)
        target = bundle.resolve(prop.get("items", {})) if is_array else prop
        coerce = _json_part if _is_object(target) else scalar_coercer(target, bundle)
        fields[name] = (coerce, is_array)
    return fields


def _is_object(schema: Any) -> bool:
    kinds = schema.get("type")
    return kinds == "object" or (isinstance(kinds, list) and "object" in kinds)


def _json_part(raw: str) -> Any:
    """An object-valued form field or part: JSON text (`application/json` is the default
    content type of an object property's part)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise CoercionError("must be a JSON object") from exc
