"""The mock answers by the spec: examples, synthesised values, Prefer, security, validation."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from flask import Flask

from server.mock.app import create_mock_app
from server.mock.package import MockSpecError
from server.mock.responder import parse_prefer

PROBLEM = "application/problem+json"
MockFactory = Callable[[str], Flask]


def test_documented_example_is_the_answer(mock_app: MockFactory) -> None:
    client = mock_app("composition.yaml").test_client()
    response = client.get("/pets/7")
    assert response.status_code == 200
    assert response.json == {"pet_type": "cat", "name": "Tom", "lives": 9}


def test_prefer_example_and_code_select_documented_responses(mock_app: MockFactory) -> None:
    client = mock_app("bodies_media.yaml").test_client()
    created = client.post("/notes", json={"text": "hi"})
    assert (created.status_code, created.json) == (201, {"id": 1, "text": "hi"})
    second = client.post("/notes", json={"text": "hi"}, headers={"Prefer": "example=second"})
    assert second.json == {"id": 2, "text": "there"}
    teapot = client.post("/notes", json={"text": "hi"}, headers={"Prefer": "code=418"})
    assert teapot.status_code == 418  # documented by `default`
    assert teapot.mimetype == PROBLEM
    unknown = client.post("/notes", json={"text": "hi"}, headers={"Prefer": "example=nope"})
    assert unknown.status_code == 400 and unknown.mimetype == PROBLEM


def test_prefer_code_that_is_not_documented_is_a_400() -> None:
    assert parse_prefer('code=404, example="a b"; respond-async') == {
        "code": "404",
        "example": "a b",
    }


def test_documented_response_headers_are_filled(mock_app: MockFactory) -> None:
    client = mock_app("bodies_media.yaml").test_client()
    response = client.post("/notes", json={"text": "hi"})
    assert response.headers["Location"] == "/example"
    assert response.headers["X-Rate-Limit-Remaining"].isdigit()
    assert client.get("/notes").headers["X-Total-Count"] == "0"


def test_media_type_follows_accept(mock_app: MockFactory) -> None:
    client = mock_app("bodies_media.yaml").test_client()
    assert client.get("/notes").mimetype == "application/json"
    csv = client.get("/notes", headers={"Accept": "text/csv"})
    assert (csv.mimetype, csv.data) == ("text/csv", b"id,text\n1,hello\n")
    png = client.get("/blobs/abcd", headers={"Accept": "image/png"})
    assert png.mimetype == "image/png" and png.data.startswith(b"\x89PNG")


def test_synthesised_bodies_are_valid_against_the_response_schema(
    mock_app: MockFactory,
) -> None:
    app = mock_app("readwrite_recursion.yaml")
    operations = app.extensions["gantry_mock"].operations
    schemas = json.loads(
        (Path(operations.__file__).parent / "schemas.json").read_text(encoding="utf-8")
    )
    client = app.test_client()
    user = client.get("/users/1")
    assert user.status_code == 200
    assert set(user.json or {}) == {"id", "name", "created_at"}  # never the writeOnly password
    (media,) = operations.OPERATIONS_BY_ID["getUser"].responses[0].content
    validator = jsonschema_rs.validator_for({**media.schema, "components": schemas["components"]})
    assert validator.is_valid(user.json)
    assert client.get("/tree").status_code == 200  # recursive schemas end


def test_request_shapes_differ_from_response_shapes(mock_app: MockFactory) -> None:
    client = mock_app("readwrite_recursion.yaml").test_client()
    # readOnly `id` and `created_at` are not required in a request; writeOnly `password` is
    assert client.post("/users", json={"name": "ada", "password": "12345678"}).status_code == 201
    missing = client.post("/users", json={"name": "ada"})
    assert missing.status_code == 400
    assert (missing.json or {})["errors"][0]["message"] == '"password" is a required property'


def test_discriminator_on_an_allof_base_selects_the_subtype(mock_app: MockFactory) -> None:
    client = mock_app("composition.yaml").test_client()
    assert (
        client.post("/pets", json={"pet_type": "dog", "name": "Rex", "good": True}).status_code
        == 201
    )
    # a dog without its own required field is not a valid Dog (nor a Cat)
    assert client.post("/pets", json={"pet_type": "dog", "name": "Rex"}).status_code == 400


def test_requests_are_validated_like_the_server_does(mock_app: MockFactory) -> None:
    client = mock_app("params_styles.yaml").test_client()
    ok = client.get(
        "/items/abc?verbose=1&fields=id,name&tag=a&tag=b&filter[color]=red&ids=1|2",
        headers={"X-Versions": "1,2"},
    )
    assert ok.status_code == 200
    assert client.get("/items/abc").status_code == 400  # verbose is required here
    assert client.get("/items/a?verbose=1").status_code == 400  # pattern
    assert client.get("/nowhere").status_code == 404
    wrong = client.post("/items/abc?verbose=1")
    assert wrong.status_code == 405 and wrong.headers["Allow"]
    for response in (wrong, client.get("/nowhere")):
        assert response.mimetype == PROBLEM


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/public", {}, 200),
        ("/default", {}, 401),
        ("/default", {"Authorization": "Bearer t"}, 200),
        ("/default", {"Authorization": "Basic dTpw"}, 401),
        ("/both", {"Authorization": "Bearer t"}, 401),
        ("/both", {"Authorization": "Bearer t", "X-API-Key": "k"}, 200),
        ("/either", {"Authorization": "Basic dTpw"}, 200),
        ("/either?api_key=k", {}, 200),
        ("/either", {"cookie:sid": "s"}, 200),
        ("/either", {"Authorization": "Bearer t"}, 401),
        ("/optional", {}, 200),
        ("/optional", {"Authorization": "Bearer t"}, 200),
        ("/oidc", {"Authorization": "Bearer t"}, 200),
    ],
)
def test_security_is_checked_by_presence(
    mock_app: MockFactory, path: str, headers: dict[str, str], status: int
) -> None:
    client = mock_app("security_forms.json").test_client()
    headers = dict(headers)
    for key in [k for k in headers if k.startswith("cookie:")]:
        client.set_cookie(key.removeprefix("cookie:"), headers.pop(key))
    response = client.get(path, headers=headers)
    assert response.status_code == status, response.data
    if status == 401:
        assert response.mimetype == PROBLEM
        assert "realm=" in response.headers["WWW-Authenticate"]


def test_challenge_names_every_accepted_scheme(mock_app: MockFactory) -> None:
    response = mock_app("security_forms.json").test_client().get("/either")
    assert response.headers["WWW-Authenticate"] == (
        'Basic realm="mock", ApiKey realm="mock", in="query", name="api_key", '
        'ApiKey realm="mock", in="cookie", name="sid"'
    )


def test_base_path_and_unserved_webhooks(mock_app: MockFactory) -> None:
    app = mock_app("servers_webhooks.yaml")
    client = app.test_client()
    assert client.get("/hooks/v1/subscriptions/sub_abcdef").status_code == 200
    assert client.get("/subscriptions/sub_abcdef").status_code == 404
    operations = app.extensions["gantry_mock"].operations
    assert [(w.kind, w.name) for w in operations.WEBHOOKS] == [("webhook", "eventHappened")]
    (callback,) = operations.CALLBACKS
    assert (callback.source, callback.expression) == ("subscribe", "{$request.body#/callback_url}")


def test_a_broken_spec_is_reported(tmp_path: Path) -> None:
    spec = tmp_path / "broken.yaml"
    spec.write_text("openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths:\n  /a: {get: [}\n")
    with pytest.raises(MockSpecError, match="YAML syntax"):
        create_mock_app(spec, cache_dir=tmp_path / "cache")


def test_refusals_take_the_documented_error_response(mock_app: MockFactory) -> None:
    client = mock_app("multi_file.yaml").test_client()
    auth = {"Authorization": "Bearer t"}
    refused = client.post("/pets", json={"name": ""}, headers=auth)  # documented 400: JSON
    assert (refused.status_code, refused.mimetype) == (400, "application/json")
    assert set(refused.json) == {"code", "message"}
    anonymous = client.post("/pets", json={"name": "Rex"})  # documented 401: the same shape
    assert (anonymous.status_code, anonymous.mimetype) == (401, "application/json")
    assert "WWW-Authenticate" in anonymous.headers
    by_default = client.get("/pets?limit=0", headers=auth)  # documented 400
    assert by_default.mimetype == "application/json"
    wrong_type = client.post("/pets", data="x", content_type="text/plain", headers=auth)
    assert (wrong_type.status_code, wrong_type.mimetype) == (415, PROBLEM)  # none documented


def test_a_multi_file_spec_is_served_whole(mock_app: MockFactory) -> None:
    client = mock_app("multi_file.yaml").test_client()
    pet = client.get("/pets/3", headers={"Authorization": "Bearer t"})
    assert pet.status_code == 200
    assert set(pet.json) >= {"name"}


def test_a_parameter_described_by_content_is_read_as_json(mock_app: MockFactory) -> None:
    client = mock_app("multi_file.yaml").test_client()
    auth = {"Authorization": "Bearer t"}
    assert client.get('/pets?filter={"text":"rex"}', headers=auth).status_code == 200
    not_json = client.get("/pets?filter=rex", headers=auth)
    assert not_json.status_code == 400
    too_long = client.get('/pets?filter={"text":"' + "x" * 30 + '"}', headers=auth)
    assert too_long.status_code == 400


MULTIPART = """\
openapi: 3.1.0
info: {title: Uploads, version: "1"}
paths:
  /uploads:
    post:
      operationId: upload
      requestBody:
        required: true
        content:
          multipart/form-data:
            schema:
              type: object
              required: [meta]
              properties:
                meta:
                  type: object
                  required: [title]
                  properties: {title: {type: string, maxLength: 20}}
                file: {type: string, format: binary}
      responses:
        "204": {description: Stored.}
"""


def test_an_object_part_of_a_multipart_body_is_decoded_as_json(tmp_path: Path) -> None:
    spec = tmp_path / "uploads.yaml"
    spec.write_text(MULTIPART)
    client = create_mock_app(spec, cache_dir=tmp_path / "cache").test_client()
    sent = {"meta": '{"title": "cv"}'}
    assert client.post("/uploads", data=sent, content_type="multipart/form-data").status_code == 204
    broken = client.post("/uploads", data={"meta": "cv"}, content_type="multipart/form-data")
    assert broken.status_code == 400
    wrong = client.post("/uploads", data={"meta": "{}"}, content_type="multipart/form-data")
    assert wrong.status_code == 400  # decoded, then held to its schema: no title


BOUNDARY = "mock-boundary-42"


def _part(name: str | None, data: bytes, *headers: str, filename: str | None = None) -> bytes:
    disposition = "Content-Disposition: form-data" + (f'; name="{name}"' if name else "")
    disposition += f'; filename="{filename}"' if filename else ""
    head = "".join(f"{line}\r\n" for line in (disposition, *headers)).encode()
    return f"--{BOUNDARY}\r\n".encode() + head + b"\r\n" + data + b"\r\n"


def _post_parts(mock_app: MockFactory, *parts: bytes) -> Any:
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    client = mock_app("multipart_encoding.yaml").test_client()
    return client.post(
        "/documents", data=body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )


JSON_METADATA = _part(
    "metadata", b'{"title": "Lease"}', "Content-Type: application/json", filename="m.json"
)
PNG_SCAN = _part("scan", b"\x89PNG\r\n", "Content-Type: image/png", filename="scan.png")


def test_multipart_parts_are_read_by_their_encoding(mock_app: MockFactory) -> None:
    tags = _part("tags", b'["a", "b"]', "Content-Type: application/json")
    created = _post_parts(mock_app, JSON_METADATA, tags, PNG_SCAN, _part("priority", b"2"))
    assert created.status_code == 201, created.json
    gif = _part("scan", b"GIF89a", "Content-Type: image/gif", filename="scan.gif")
    refused = _post_parts(mock_app, JSON_METADATA, gif)
    assert (refused.status_code, refused.mimetype) == (415, PROBLEM)
    assert refused.json["errors"] == [
        {"field": "body.scan", "message": "image/gif is not allowed here"}
    ]


def test_a_multipart_part_that_is_not_its_type_is_a_400(mock_app: MockFactory) -> None:
    broken = _part("metadata", b'{"title": ', "Content-Type: application/json")
    refused = _post_parts(mock_app, broken, PNG_SCAN)
    assert refused.status_code == 400
    assert refused.json["errors"] == [{"field": "body.metadata", "message": "malformed JSON"}]
    unnamed = _post_parts(mock_app, JSON_METADATA, PNG_SCAN, _part(None, b"x"))
    assert (unnamed.status_code, unnamed.mimetype) == (400, PROBLEM)


def test_form_fields_with_a_json_encoding_are_read_as_json(mock_app: MockFactory) -> None:
    client = mock_app("multipart_encoding.yaml").test_client()
    form = "application/x-www-form-urlencoded"
    sent = 'labels=["alpha","beta"]&style={"color":"red"}'  # one JSON text: two short labels
    assert client.put("/documents/1/labels", data=sent, content_type=form).status_code == 204
    too_many = 'labels=["a","b","c","d"]'
    assert client.put("/documents/1/labels", data=too_many, content_type=form).status_code == 400


ROOT_OF_TWO = """\
openapi: 3.1.0
info: {title: Two files, version: "1"}
paths:
  /things:
    post:
      operationId: createThing
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: "thing.yaml"}
      responses:
        "204": {description: Stored.}
"""


def test_a_changed_referenced_file_gets_a_package_of_its_own(tmp_path: Path) -> None:
    spec, cache = tmp_path / "api.yaml", tmp_path / "cache"
    spec.write_text(ROOT_OF_TWO)
    thing = tmp_path / "thing.yaml"
    thing.write_text("type: object\nproperties: {name: {type: string, maxLength: 3}}\n")
    before = create_mock_app(spec, cache_dir=cache).test_client()
    assert before.post("/things", json={"name": "long"}).status_code == 400
    thing.write_text("type: object\nproperties: {name: {type: string, maxLength: 10}}\n")
    after = create_mock_app(spec, cache_dir=cache).test_client()  # same process, same root
    assert after.post("/things", json={"name": "long"}).status_code == 204
    assert before.post("/things", json={"name": "long"}).status_code == 400
