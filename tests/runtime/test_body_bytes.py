"""Reading the body straight from the WSGI input gives what Werkzeug's ``get_data`` gives."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, Request
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from server.runtime.body_bytes import content_length, max_content_length, read_body

BODY = b'{"name": "widget", "price": 9.5}'
LIMIT = 64


@pytest.fixture
def app() -> Iterator[Flask]:
    app = Flask("body_bytes")
    app.config["MAX_CONTENT_LENGTH"] = LIMIT
    with app.app_context():
        yield app


def _environ(body: bytes, **extra: Any) -> dict[str, Any]:
    environ = EnvironBuilder(
        method="POST", data=body, content_type="application/json"
    ).get_environ()
    environ["wsgi.input"] = io.BytesIO(body)
    environ.update(extra)
    return environ


class _Trickle(io.RawIOBase):
    """An input that hands out a few bytes per read, as a socket may."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk, self._data = self._data[:3], self._data[3:]
        return chunk


def _outcome(read: Callable[[Request], bytes], environ: dict[str, Any]) -> Any:
    try:
        return read(Request(environ))
    except Exception as exc:
        return type(exc)


CASES: dict[str, dict[str, Any]] = {
    "exact": {},
    "empty": {"CONTENT_LENGTH": "0"},
    "shorter than declared": {"CONTENT_LENGTH": str(len(BODY) + 5)},
    "longer than declared": {"CONTENT_LENGTH": "10"},
    "over the limit": {"CONTENT_LENGTH": str(LIMIT + 1)},
    "not a number": {"CONTENT_LENGTH": "ten"},
    "signed": {"CONTENT_LENGTH": "+32"},
    "non-ASCII digits": {"CONTENT_LENGTH": "\u0663\u0662"},
    "no length": {"CONTENT_LENGTH": ""},
    "chunked": {"HTTP_TRANSFER_ENCODING": "chunked"},
    "server-terminated": {"wsgi.input_terminated": True},
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.usefixtures("app")
def test_read_body_answers_as_get_data(case: str) -> None:
    def werkzeug(request: Request) -> bytes:
        return request.get_data(cache=True)

    expected = _outcome(werkzeug, _environ(BODY, **CASES[case]))
    assert _outcome(read_body, _environ(BODY, **CASES[case])) == expected
    request = Request(_environ(BODY, **CASES[case]))
    assert content_length(request) == Request(_environ(BODY, **CASES[case])).content_length


@pytest.mark.usefixtures("app")
def test_a_server_terminated_input_is_read_to_the_declared_length() -> None:
    # Such a server (gunicorn) ends the stream where the body ends, so Werkzeug reads to the end
    # of the stream and this reads Content-Length bytes: the same body. Were the stream to run
    # on, the body would still be what Content-Length declares (RFC 9112, section 6.2).
    terminated = {"wsgi.input_terminated": True}
    assert read_body(Request(_environ(BODY, **terminated))) == BODY
    running_on = _environ(BODY, **terminated, **{"wsgi.input": io.BytesIO(BODY + b"GET / HTTP")})
    assert read_body(Request(running_on)) == BODY
    with pytest.raises(ClientDisconnected):  # a body cut short is the client's doing
        read_body(Request(_environ(BODY, **terminated, CONTENT_LENGTH=str(len(BODY) + 5))))


@pytest.mark.usefixtures("app")
def test_read_body_keeps_reading_a_trickling_input() -> None:
    request = Request(_environ(BODY, **{"wsgi.input": _Trickle(BODY)}))
    assert read_body(request) == BODY


@pytest.mark.usefixtures("app")
def test_the_body_stays_readable_through_werkzeug() -> None:
    request = Request(_environ(BODY))
    assert read_body(request) == BODY
    assert request.get_data() == BODY
    assert request.get_json() == {"name": "widget", "price": 9.5}


@pytest.mark.usefixtures("app")
def test_an_opened_werkzeug_stream_keeps_the_input() -> None:
    request = Request(_environ(BODY))
    assert request.stream.read(5) == BODY[:5]
    assert read_body(request) == BODY[5:]  # what get_data() would answer now


@pytest.mark.usefixtures("app")
def test_errors_are_werkzeugs() -> None:
    with pytest.raises(RequestEntityTooLarge):
        read_body(Request(_environ(b"x" * (LIMIT + 1))))
    with pytest.raises(ClientDisconnected):
        read_body(Request(_environ(BODY, CONTENT_LENGTH=str(len(BODY) + 5))))


def test_max_content_length_is_flasks(app: Flask) -> None:
    request = Request(_environ(BODY))
    assert max_content_length(request) == request.max_content_length == LIMIT
    request.max_content_length = 10  # set on one request (Flask 3.1)
    assert max_content_length(request) == request.max_content_length == 10
    app.config["MAX_CONTENT_LENGTH"] = None
    assert max_content_length(Request(_environ(BODY))) is None


def test_max_content_length_outside_an_app() -> None:
    request = Request(_environ(BODY))
    assert max_content_length(request) == request.max_content_length
