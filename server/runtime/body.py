"""Request body parsing: pick the documented media type, decode, validate, build the model.

A ``BodyParser`` is compiled once per operation. JSON bodies are validated against the compiled
schema and, when the spec names a component schema, handed to the handler as the generated
pydantic model; text and binary bodies are decoded by their media type.

Form and multipart bodies are read property by property, as the schema and the operation's
``encoding`` say: an object (or an array sent as one JSON part) as JSON, a binary string as a
file (``FileStorage``), any other scalar as text coerced to its type. A multipart part whose own
``Content-Type`` its encoding does not allow is a 415 naming the part; a part that cannot be
read as its property's type is a 400 naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ValidationError
from werkzeug.datastructures import FileStorage
from werkzeug.http import parse_options_header
from werkzeug.wrappers import Request as WerkzeugRequest

from server.runtime.body_bytes import content_length, read_body
from server.runtime.errors import BadRequest, FieldError, UnsupportedMediaType
from server.runtime.json_body import check_json_charset, decode_json_body
from server.runtime.multipart import Part, boundary_of, read_parts
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
    form_fields: dict[str, _FormField]  # form and multipart bodies: how each property is read
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
                    form_fields=(
                        _form_fields(schema, getattr(media, "encoding", None) or {}, bundle)
                        if schema is not None
                        else {}
                    ),
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
        if mt == "multipart/form-data":
            return self._multipart(request, media)
        if mt == "application/x-www-form-urlencoded":
            return self._urlencoded(request, media)
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

    def _urlencoded(self, request: WerkzeugRequest, media: _Media) -> Any:
        fields = media.form_fields
        form = request.form
        values: dict[str, list[Any]] = {}
        errors: list[FieldError] = []
        for key in form:
            field = fields.get(key)
            for text in form.getlist(key):
                try:
                    decoded, from_json = _read_text(field, text)
                except CoercionError as exc:
                    errors.append(FieldError(f"body.{key}", str(exc)))
                    break
                _add(values, key, field, decoded, from_json=from_json)
        return self._form_value(values, {}, errors, media)

    def _multipart(self, request: WerkzeugRequest, media: _Media) -> Any:
        if not content_length(request) and not request.environ.get("HTTP_TRANSFER_ENCODING"):
            if self.required:  # a Content-Type and no body at all
                raise BadRequest("A request body is required.", errors=[_body_required()])
            return None
        fields = media.form_fields
        boundary = boundary_of(request.environ.get("CONTENT_TYPE", ""))
        parts = read_parts(
            request, boundary, lambda name, filename: _streamed(fields, name, filename)
        )
        values: dict[str, list[Any]] = {}
        files: dict[str, list[FileStorage]] = {}
        errors: list[FieldError] = []
        for part in parts:
            field = fields.get(part.name)
            if field is not None:
                _check_allowed(part, field)
            if part.file is not None:
                files.setdefault(part.name, []).append(part.file)
                continue
            try:
                decoded, from_json = _read_part(field, part)
            except CoercionError as exc:
                errors.append(FieldError(f"body.{part.name}", str(exc)))
                continue
            _add(values, part.name, field, decoded, from_json=from_json)
        return self._form_value(values, files, errors, media)

    def _form_value(
        self,
        values: dict[str, list[Any]],
        files: dict[str, list[FileStorage]],
        errors: list[FieldError],
        media: _Media,
    ) -> dict[str, Any]:
        """The body as a dict: an array property's values as a list, any other's last value;
        validated with each file standing in as the string (binary) it is."""
        if errors:
            raise BadRequest("Invalid form fields.", errors=errors)
        fields = media.form_fields
        arrays = {name for name, field in fields.items() if field.is_array}
        value: dict[str, Any] = {}
        for name, items in values.items():
            value[name] = items if name in arrays else items[-1]
        for name, stored in files.items():
            value[name] = ["<binary>"] * len(stored) if name in arrays else "<binary>"
        self._check(value, media)
        for name, stored in files.items():
            value[name] = stored if name in arrays else stored[-1]
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


@dataclass(frozen=True, slots=True)
class _FormField:
    """How the values of one property of a form or multipart body are read."""

    is_array: bool
    is_file: bool  # binary: a multipart part is handed over as a ``FileStorage``
    is_object: bool  # (its items are) objects: always JSON text
    json_by_default: bool  # a form field, or a part without a Content-Type, is JSON text
    json_if_sent: bool  # a part that says it is JSON is read as JSON
    spread: bool  # an array whose items are not arrays: a JSON array sent for it holds its items
    coerce: Callable[[str], Any]  # a text value to the schema's scalar type
    allows: tuple[str, ...]  # media types a part may declare (its encoding's); () for any
    encoding: str  # the encoding's contentType as written, for messages

    def reads_json(self, media_type: str) -> bool:
        """Whether a value sent as ``media_type`` ("" when it has none) is JSON text."""
        if not media_type:
            return self.json_by_default
        return self.is_object or (self.json_if_sent and _is_json(media_type))


# Charsets a text part may declare; anything else is refused rather than guessed at.
_TEXT_CHARSETS = frozenset(
    {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1"}
)
_NUL = "must not contain a NUL character"


def _form_fields(
    schema: Any, encoding: Mapping[str, str], bundle: SchemaBundle
) -> dict[str, _FormField]:
    """How each declared property of a form or multipart body is read, by name.

    A part's type is its own ``Content-Type``, else the first its ``encoding`` lists, else
    OpenAPI's default: ``application/json`` for an object, ``application/octet-stream`` for a
    binary string, ``text/plain`` for other scalars; an array's items are sent as repeated parts
    of their own type, or as one JSON array.
    """
    fields: dict[str, _FormField] = {}
    for name, raw in (_resolved(schema, bundle).get("properties") or {}).items():
        prop = _resolved(raw, bundle)
        kinds = _types(prop, bundle)
        is_array = "array" in kinds
        target = _resolved(prop.get("items", {}), bundle) if is_array else prop
        item_kinds = _types(target, bundle)
        declared = encoding.get(name, "")
        allows = _media_types(declared)
        is_object = "object" in item_kinds
        fields[name] = _FormField(
            is_array=is_array,
            is_file=_is_binary(target) and not any(_is_json(m) for m in allows),
            is_object=is_object,
            json_by_default=is_object or (bool(allows) and _is_json(allows[0])),
            json_if_sent=is_array or is_object or any(_is_json(m) for m in allows),
            spread=is_array and "array" not in item_kinds,
            coerce=scalar_coercer(target, bundle),
            allows=allows,
            encoding=declared,
        )
    return fields


def _resolved(schema: Any, bundle: SchemaBundle) -> dict[str, Any]:
    """``schema`` with its component reference followed; ``{}`` for a boolean schema."""
    resolved = bundle.resolve(schema) if isinstance(schema, dict) else schema
    return resolved if isinstance(resolved, dict) else {}


def _types(schema: dict[str, Any], bundle: SchemaBundle, depth: int = 0) -> set[str]:
    """The JSON types ``schema`` allows, as far as ``type`` and its branches say."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {t for t in declared if isinstance(t, str)}
    found: set[str] = set()
    if depth < 8:
        for key in ("allOf", "anyOf", "oneOf"):
            for branch in schema.get(key) or ():
                found |= _types(_resolved(branch, bundle), bundle, depth + 1)
    if not found and "properties" in schema:
        found.add("object")
    return found


def _is_binary(schema: dict[str, Any]) -> bool:
    """A string of raw bytes: 3.0's ``format: binary``, 3.1's ``contentMediaType`` (unless
    ``contentEncoding`` says the bytes are written as text, as base64)."""
    if schema.get("format") == "binary":
        return True
    return "contentMediaType" in schema and "contentEncoding" not in schema


def _media_types(content_type: str) -> tuple[str, ...]:
    """``"image/png, image/jpeg"`` → ``("image/png", "image/jpeg")``: essences, lower case."""
    found = (_essence(item) for item in content_type.split(","))
    return tuple(media for media in found if media)


def _streamed(fields: Mapping[str, _FormField], name: str, filename: str | None) -> bool:
    """A part goes to a file when its property is binary, or (undeclared) when it is a file."""
    field = fields.get(name)
    return field.is_file if field is not None else filename is not None


def _check_allowed(part: Part, field: _FormField) -> None:
    """``UnsupportedMediaType`` for a part whose Content-Type its encoding does not allow (a
    part without one is taken to be of the declared type)."""
    actual = part.media_type
    if not field.allows or not actual or any(_matches(m, actual) for m in field.allows):
        return
    shown = actual if len(actual) <= 60 else actual[:57] + "..."
    raise UnsupportedMediaType(
        f"The part {_shown(part.name)} is {shown}; its encoding allows {field.encoding}.",
        errors=[FieldError(f"body.{part.name}", f"{shown} is not allowed here")],
    )


def _read_part(field: _FormField | None, part: Part) -> tuple[Any, bool]:
    """One part's value, and whether it was read as JSON."""
    if field is not None and field.reads_json(part.media_type):
        charset = _charset(part)
        if charset is not None and charset not in ("utf-8", "utf8"):
            raise _charset_refused(part, charset)
        return _json_value(part.data), True
    text = _part_text(part)
    return (field.coerce(text) if field is not None else text), False


def _read_text(field: _FormField | None, text: str) -> tuple[Any, bool]:
    """One value of a URL-encoded form, and whether it was read as JSON."""
    if "\x00" in text:
        raise CoercionError(_NUL)
    if field is None:
        return text, False
    if field.json_by_default:
        return _json_value(text.encode("utf-8", "surrogatepass")), True
    return field.coerce(text), False


def _part_text(part: Part) -> str:
    charset = _charset(part) or "utf-8"
    if charset not in _TEXT_CHARSETS:
        raise _charset_refused(part, charset)
    try:
        text = part.data.decode(charset)
    except UnicodeDecodeError:
        raise CoercionError(f"is not valid {charset} text") from None
    if "\x00" in text:
        raise CoercionError(_NUL)
    return text


def _charset(part: Part) -> str | None:
    if ";" not in part.content_type:
        return None
    charset = parse_options_header(part.content_type)[1].get("charset")
    return charset.strip().lower() if charset is not None else None


def _charset_refused(part: Part, charset: str) -> UnsupportedMediaType:
    shown = charset if len(charset) <= 40 else charset[:37] + "..."
    return UnsupportedMediaType(
        f"The part {_shown(part.name)} is in charset {shown}, which is not accepted.",
        errors=[FieldError(f"body.{part.name}", f"charset {shown} is not accepted")],
    )


def _json_value(data: bytes) -> Any:
    """A JSON part or field, held to what a JSON body is held to (``decode_json_body``)."""
    try:
        return decode_json_body(data)
    except BadRequest as exc:
        raise CoercionError(exc.errors[0].message if exc.errors else "malformed JSON") from None


def _add(
    values: dict[str, list[Any]],
    name: str,
    field: _FormField | None,
    decoded: Any,
    *,
    from_json: bool,
) -> None:
    """Keep one value of ``name``: a JSON array sent for an array property gives its items."""
    kept = values.setdefault(name, [])
    if from_json and field is not None and field.spread and isinstance(decoded, list):
        kept.extend(decoded)
    else:
        kept.append(decoded)


def _shown(name: str) -> str:
    """A part's name as a message may quote it: bounded."""
    return repr(name if len(name) <= 60 else name[:57] + "...")
