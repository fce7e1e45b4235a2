"""Form and multipart bodies read part by part, as the schema and the operation's `encoding` say.

Bodies are built by hand, byte by byte, so each part carries exactly the headers a test means:
an object part as JSON (also when sent as a file), an array as repeated parts or one JSON part,
a file part held to its encoding's media types, a scalar coerced to its type; and the refusals,
each a problem naming the part: a type the encoding does not allow (415), a part that is not
what its property needs (400), a body that is not multipart (400), over a limit (413).
"""

from __future__ import annotations

import importlib
import io
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from server.runtime.body import BodyParser
from server.runtime.errors import ApiError, BadRequest, UnsupportedMediaType
from server.runtime.schemas import SchemaBundle

BOUNDARY = "gantry-7MA4YWxkTrZu0gW"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"
FORM = "application/x-www-form-urlencoded"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # every byte value, CR and LF among them
GOLDEN = Path(__file__).resolve().parents[1] / "generator" / "golden" / "multipart_encoding"

BUNDLE = SchemaBundle(
    {
        "schemas": {
            "Metadata": {
                "type": "object",
                "required": ["title"],
                "additionalProperties": False,
                "properties": {
                    "title": {"type": "string", "minLength": 1, "maxLength": 40},
                    "pages": {"type": "integer", "minimum": 1},
                },
            }
        }
    }
)
UPLOAD_SCHEMA = {
    "type": "object",
    "required": ["metadata", "scan"],
    "properties": {
        "metadata": {"$ref": "#/components/schemas/Metadata"},
        "tags": {
            "type": "array",
            "maxItems": 5,
            "items": {"type": "string", "minLength": 1, "maxLength": 20},
        },
        "scan": {"type": "string", "contentMediaType": "application/octet-stream"},
        "priority": {"type": "integer", "minimum": 0, "maximum": 9},
        "attachments": {"type": "array", "items": {"type": "string", "format": "binary"}},
    },
}
UPLOAD_ENCODING = {
    "metadata": "application/json",
    "tags": "text/plain, application/json",
    "scan": "image/png, image/jpeg",
}
LABELS_SCHEMA = {
    "type": "object",
    "required": ["labels"],
    "properties": {
        "labels": {"type": "array", "maxItems": 3, "items": {"type": "string", "maxLength": 10}},
        "style": {"type": "object", "properties": {"color": {"enum": ["red", "blue"]}}},
        "count": {"type": "integer"},
    },
}


@dataclass(frozen=True)
class Media:
    """A `MediaBody` of the operation table."""

    media_type: str
    schema: Any
    encoding: Mapping[str, str] = field(default_factory=dict)
    model: str | None = None
    examples: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Body:
    """A `RequestBody` of the operation table."""

    content: tuple[Media, ...]
    required: bool = True


UPLOAD = BodyParser(
    Body((Media("multipart/form-data", UPLOAD_SCHEMA, UPLOAD_ENCODING),)), BUNDLE, None
)
LABELS = BodyParser(
    Body((Media(FORM, LABELS_SCHEMA, {"labels": "application/json"}),)), BUNDLE, None
)
OPTIONAL_UPLOAD = BodyParser(
    Body((Media("multipart/form-data", UPLOAD_SCHEMA),), required=False), BUNDLE, None
)


def part(name: str | None, data: bytes | str, *headers: str, filename: str | None = None) -> bytes:
    """One part: its Content-Disposition, the other headers, a blank line, the data."""
    disposition = "Content-Disposition: form-data"
    if name is not None:
        disposition += f'; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    lines = [disposition, *headers]
    raw = data.encode() if isinstance(data, str) else data
    head = "".join(f"{line}\r\n" for line in lines).encode()
    return f"--{BOUNDARY}\r\n".encode() + head + b"\r\n" + raw + b"\r\n"


def multipart(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def metadata(text: str = '{"title": "Lease", "pages": 3}', *headers: str) -> bytes:
    return part("metadata", text, *headers)


def scan(media_type: str = "image/png", data: bytes = PNG) -> bytes:
    return part("scan", data, f"Content-Type: {media_type}", filename="scan.png")


def request(data: bytes | str, content_type: str = MULTIPART, **limits: Any) -> Request:
    raw = data.encode() if isinstance(data, str) else data
    environ = EnvironBuilder(method="POST").get_environ()
    environ.update(
        {
            "CONTENT_TYPE": content_type,
            "CONTENT_LENGTH": str(len(raw)),
            "wsgi.input": io.BytesIO(raw),
        }
    )
    http = Request(environ)
    for name, value in limits.items():
        setattr(http, name, value)
    return http


def parse(data: bytes | str, content_type: str = MULTIPART, **limits: Any) -> Any:
    parser = LABELS if content_type == FORM else UPLOAD
    return parser.parse(request(data, content_type, **limits))


def refusal(error: type[ApiError], data: bytes | str, content_type: str = MULTIPART) -> ApiError:
    with pytest.raises(error) as caught:
        parse(data, content_type)
    return caught.value


def fields(error: ApiError) -> dict[str, str]:
    return {e.field: e.message for e in error.errors}


# ── what each property's part becomes ─────────────────────────────────────────────────────────


def test_each_part_is_read_as_its_property_needs() -> None:
    body = parse(
        multipart(
            metadata(),
            part("tags", "blue"),
            part("tags", "green", "Content-Type: text/plain; charset=utf-8"),
            scan(),
            part("priority", "3"),
        )
    )
    assert body["metadata"] == {"title": "Lease", "pages": 3}
    assert body["tags"] == ["blue", "green"]
    assert body["priority"] == 3
    stored = body["scan"]
    assert isinstance(stored, FileStorage)
    assert (stored.filename, stored.mimetype, stored.read()) == ("scan.png", "image/png", PNG)


def test_an_object_part_sent_as_a_json_file_is_decoded() -> None:
    sent = part(
        "metadata", '{"title": "Lease"}', "Content-Type: application/json", filename="meta.json"
    )
    assert parse(multipart(sent, scan()))["metadata"] == {"title": "Lease"}


def test_an_array_sent_as_one_json_part_holds_its_items() -> None:
    tags = part("tags", '["a", "b"]', "Content-Type: application/json")
    assert parse(multipart(metadata(), tags, scan()))["tags"] == ["a", "b"]


def test_a_file_part_of_any_allowed_type_is_a_file() -> None:
    body = parse(multipart(metadata(), scan("image/jpeg", b"\xff\xd8\xff")))
    assert body["scan"].read() == b"\xff\xd8\xff"
    # Without a Content-Type of its own, a part is taken to be of the declared type.
    untyped = part("scan", PNG, filename="scan.png")
    assert parse(multipart(metadata(), untyped))["scan"].read() == PNG


def test_a_binary_property_is_a_file_even_when_sent_without_a_filename() -> None:
    body = parse(
        multipart(
            metadata(), part("scan", PNG), part("attachments", b"1"), part("attachments", b"2")
        )
    )
    assert isinstance(body["scan"], FileStorage) and body["scan"].filename is None
    assert [f.read() for f in body["attachments"]] == [b"1", b"2"]


def test_a_part_the_schema_does_not_name_is_text_or_a_file() -> None:
    body = parse(
        multipart(metadata(), scan(), part("note", "hi"), part("extra", b"x", filename="x"))
    )
    assert body["note"] == "hi"
    assert isinstance(body["extra"], FileStorage)


def test_a_text_part_in_latin_1_is_decoded_in_its_charset() -> None:
    tag = part(
        "tags", "caf\u00e9".encode("latin-1"), "Content-Type: text/plain; charset=ISO-8859-1"
    )
    assert parse(multipart(metadata(), tag, scan()))["tags"] == ["caf\u00e9"]


def test_a_file_larger_than_the_memory_limit_is_streamed() -> None:
    big = b"\x89PNG" + b"\0" * 200_000
    body = parse(multipart(metadata(), scan(data=big)), max_form_memory_size=10_000)
    assert body["scan"].read() == big


# ── refusals ───────────────────────────────────────────────────────────────────────────────


def test_a_part_of_a_type_its_encoding_does_not_allow_is_a_415_naming_it() -> None:
    error = refusal(UnsupportedMediaType, multipart(metadata(), scan("image/gif")))
    assert "scan" in error.detail and "image/png, image/jpeg" in error.detail
    assert fields(error) == {"body.scan": "image/gif is not allowed here"}
    as_text = metadata('{"title": "Lease"}', "Content-Type: text/plain")
    assert fields(refusal(UnsupportedMediaType, multipart(as_text, scan()))) == {
        "body.metadata": "text/plain is not allowed here"
    }


def test_an_encoding_may_allow_a_family_of_types() -> None:
    parser = BodyParser(
        Body((Media("multipart/form-data", UPLOAD_SCHEMA, {"scan": "image/*"}),)), BUNDLE, None
    )
    sent = multipart(metadata(), scan("image/webp"))
    assert parser.parse(request(sent))["scan"].mimetype == "image/webp"
    with pytest.raises(UnsupportedMediaType):
        parser.parse(request(multipart(metadata(), scan("application/pdf"))))


def test_a_json_part_that_does_not_decode_is_a_400_naming_the_field() -> None:
    error = refusal(BadRequest, multipart(metadata('{"title": '), scan()))
    assert fields(error) == {"body.metadata": "malformed JSON"}
    twice = metadata('{"title": "a", "title": "b"}')
    assert (
        "more than once" in fields(refusal(BadRequest, multipart(twice, scan())))["body.metadata"]
    )


def test_a_json_part_in_another_charset_is_a_415() -> None:
    latin = metadata('{"title": "Lease"}', "Content-Type: application/json; charset=latin-1")
    assert "body.metadata" in fields(refusal(UnsupportedMediaType, multipart(latin, scan())))


def test_a_decoded_part_is_held_to_its_schema() -> None:
    error = refusal(BadRequest, multipart(metadata('{"pages": 0}'), scan()))
    assert {e.field for e in error.errors} >= {"body.metadata"}


@pytest.mark.parametrize(
    ("sent", "field", "message"),
    [
        (part("priority", "high"), "body.priority", "must be an integer"),
        (part("tags", b"\xff\xfe"), "body.tags", "is not valid utf-8 text"),
        (part("tags", "a\x00b"), "body.tags", "must not contain a NUL character"),
    ],
)
def test_a_text_part_that_is_not_its_type_is_a_400(sent: bytes, field: str, message: str) -> None:
    assert fields(refusal(BadRequest, multipart(metadata(), scan(), sent))) == {field: message}


def test_a_text_part_in_an_unknown_charset_is_a_415() -> None:
    tag = part("tags", "x", "Content-Type: text/plain; charset=utf-7")
    assert "body.tags" in fields(refusal(UnsupportedMediaType, multipart(metadata(), tag, scan())))


@pytest.mark.parametrize(
    ("data", "content_type", "detail"),
    [
        (multipart(metadata(), scan()), "multipart/form-data", "no usable boundary"),
        (multipart(metadata(), scan()), "multipart/form-data; boundary=", "no usable boundary"),
        (multipart(metadata(), scan())[:-12], MULTIPART, "malformed"),  # cut short
        (b"metadata=1", MULTIPART, "malformed"),  # not multipart at all
        (multipart(metadata(), scan()), "multipart/form-data; boundary=other", "malformed"),
        (multipart(part(None, "x"), scan()), MULTIPART, "no readable name"),
        (f"--{BOUNDARY}\r\nX-Nothing: 1\r\n\r\nx\r\n--{BOUNDARY}--\r\n", MULTIPART, "malformed"),
        (multipart(part("n\xe9", "x").replace(b"n\xc3\xa9", b"n\xe9")), MULTIPART, "malformed"),
    ],
)
def test_a_body_that_is_not_multipart_is_a_400(
    data: bytes | str, content_type: str, detail: str
) -> None:
    error = refusal(BadRequest, data, content_type)
    assert detail in error.detail


def test_an_empty_body_is_a_missing_body() -> None:
    assert fields(refusal(BadRequest, b"")) == {"body": "is required"}
    assert OPTIONAL_UPLOAD.parse(request(b"")) is None


def test_limits_hold_for_parts() -> None:
    with pytest.raises(RequestEntityTooLarge):  # a text part held in memory
        parse(multipart(metadata(), scan(), part("note", "x" * 5_000)), max_form_memory_size=1_000)
    with pytest.raises(RequestEntityTooLarge):
        parse(multipart(metadata(), scan(), part("priority", "1")), max_form_parts=2)
    with pytest.raises(RequestEntityTooLarge):
        parse(multipart(metadata(), scan()), max_content_length=100)


# ── URL-encoded forms ──────────────────────────────────────────────────────────────────────


def test_form_fields_with_a_json_encoding_are_decoded_as_json() -> None:
    body = parse('labels=["a","b"]&style={"color":"red"}&count=2', FORM)
    assert body == {"labels": ["a", "b"], "style": {"color": "red"}, "count": 2}


def test_a_form_field_that_is_not_json_is_a_400_naming_it() -> None:
    assert fields(refusal(BadRequest, "labels=a", FORM)) == {"body.labels": "malformed JSON"}
    assert "body.style" in fields(refusal(BadRequest, 'labels=[]&style={"color"', FORM))


def test_a_form_field_holding_a_nul_is_a_400() -> None:
    error = refusal(BadRequest, "labels=[]&note=a%00b", FORM)
    assert fields(error) == {"body.note": "must not contain a NUL character"}


# ── hostile bytes ──────────────────────────────────────────────────────────────────────────


def _mangled(draw: st.DrawFn) -> bytes:
    good = multipart(
        metadata(),
        part("tags", "a"),
        scan(),
        part("priority", "1", "Content-Type: text/plain; charset=utf-8"),
    )
    at = draw(st.integers(min_value=0, max_value=len(good)))
    cut = draw(st.integers(min_value=0, max_value=8))
    return good[:at] + draw(st.binary(max_size=12)) + good[at + cut :]


@st.composite
def hostile_multipart(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["mangled", "bytes", "parts"]))
    if kind == "mangled":
        return _mangled(draw)
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    names = st.sampled_from(["metadata", "tags", "scan", "priority", "x", "", None])
    headers = st.lists(
        st.sampled_from(
            [
                "Content-Type: application/json",
                "Content-Type: image/png",
                "Content-Type: text/plain; charset=latin-1",
                "Content-Type: application/json; charset=utf-16",
                "Content-Type: ;;;",
                "Content-Type: \u00e9/\u00e9",
            ]
        ),
        max_size=2,
    )
    sent = [
        part(
            draw(names),
            draw(st.binary(max_size=30)),
            *draw(headers),
            filename=draw(st.none() | st.just("f")),
        )
        for _ in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    return multipart(*sent)


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(data=hostile_multipart())
def test_hostile_multipart_bodies_are_a_4xx_problem_or_a_value(data: bytes) -> None:
    try:
        parse(data, max_form_memory_size=64)
    except ApiError as exc:
        assert 400 <= exc.status < 500
    except HTTPException as exc:  # Werkzeug's own: 413, or a disconnect
        assert exc.code is not None and 400 <= exc.code < 500


# ── through the contract gate, as the server reads it ─────────────────────────────────────


@pytest.fixture
def golden_package(tmp_path: Path) -> Iterator[Any]:
    """The corpus spec's golden package, imported under a name of its own."""
    name = "multipart_encoding_pkg"
    (tmp_path / name).symlink_to(GOLDEN, target_is_directory=True)
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


def _gated_app(package: Any, seen: list[Any], **config: Any) -> Flask:
    from server.runtime.context import Reply
    from server.runtime.dispatch import Dispatcher
    from server.runtime.gate import GatedFlask, install_contract_gate
    from server.runtime.pagination import CursorCodec
    from server.runtime.problem import install_error_handlers

    class Guard:
        def authenticate(self, *args: Any) -> None:
            return None

        def authorize(self, *args: Any) -> None:
            return None

    class Session:
        def commit(self) -> None: ...

        def rollback(self) -> None: ...

        def close(self) -> None: ...

    def handler(request: Any) -> Any:
        seen.append(request.body)
        return Reply(body={"id": 1, "title": request.body["metadata"]["title"]}, status=201)

    models = importlib.import_module(package.__name__ + ".models")
    routes = importlib.import_module(package.__name__ + ".routes")
    app = GatedFlask("multipart")
    app.config.update(PROVIDE_AUTOMATIC_OPTIONS=False, **config)
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(package),
        models=models,
        guard=Guard(),
        cursors=CursorCodec(b"x"),
        session_factory=Session,  # type: ignore[arg-type]
        handlers=lambda operation: handler,
    )
    routes.register_routes(app, dispatcher.bind)
    install_contract_gate(app, dispatcher.admit)
    return app


def test_the_gate_reads_parts_by_the_generated_encoding(golden_package: Any) -> None:
    seen: list[Any] = []
    client = _gated_app(golden_package, seen).test_client()
    good = multipart(metadata(), part("tags", "a"), scan(), part("priority", "4"))
    response = client.post("/documents", data=good, content_type=MULTIPART)
    assert response.status_code == 201, response.json
    (body,) = seen
    assert (body["metadata"], body["tags"], body["priority"]) == (
        {"title": "Lease", "pages": 3},
        ["a"],
        4,
    )
    assert body["scan"].read() == PNG
    wrong = client.post(
        "/documents", data=multipart(metadata(), scan("image/gif")), content_type=MULTIPART
    )
    assert (wrong.status_code, wrong.mimetype) == (415, "application/problem+json")
    assert wrong.json is not None and wrong.json["errors"][0]["field"] == "body.scan"


def test_the_gate_holds_parts_to_the_apps_form_limits(golden_package: Any) -> None:
    app = _gated_app(golden_package, [], MAX_FORM_MEMORY_SIZE=1_000, MAX_FORM_PARTS=3)
    client = app.test_client()
    long_note = multipart(metadata(), scan(), part("note", "x" * 5_000))
    assert client.post("/documents", data=long_note, content_type=MULTIPART).status_code == 413
    many = multipart(metadata(), scan(), part("tags", "a"), part("tags", "b"))
    response = client.post("/documents", data=many, content_type=MULTIPART)
    assert (response.status_code, response.mimetype) == (413, "application/problem+json")
