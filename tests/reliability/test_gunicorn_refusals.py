"""What gunicorn refuses before the app sees a request is answered as problem+json too.

Each request below is sent as raw bytes (no client library would send them) to a real
``gantry serve``; every answer is a ``Problem`` with the right status and a documented ``code``,
``X-Request-Id`` equal to its ``request_id``, the security headers, and a closed connection.
"""

from __future__ import annotations

import jsonschema
import pytest

from contract_tests.live import LiveServer
from tests.reliability.edge import EDGE_TOKEN, exchange

HOST = b"Host: 127.0.0.1\r\n"
LOGIN = b"POST /api/v1/auth/login HTTP/1.1\r\n" + HOST + b"Content-Type: application/json\r\n"

# name -> (raw request, status, code)
REFUSALS: dict[str, tuple[bytes, int, str]] = {
    "invalid UTF-8 in the path": (
        b"GET /api/v1/health\xff HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "validation_failed",
    ),
    "invalid UTF-8 in the query": (
        b"GET /api/v1/admin/users?q=\xed\xa0\x80 HTTP/1.1\r\n" + HOST + b"\r\n",
        400,
        "validation_failed",
    ),
    "a NUL in a header": (
        b"GET /api/v1/health HTTP/1.1\r\n" + HOST + b"X-Note: a\x00b\r\n\r\n",
        400,
        "validation_failed",
    ),
    "a negative Content-Length": (
        LOGIN + b"Content-Length: -1\r\n\r\n",
        400,
        "validation_failed",
    ),
    "Content-Length with Transfer-Encoding": (
        LOGIN + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "validation_failed",
    ),
    "a transfer coding nobody knows": (
        LOGIN + b"Transfer-Encoding: bogus, chunked\r\n\r\n0\r\n\r\n",
        501,
        "not_implemented",
    ),
    "a malformed request line": (b"GARBAGE\r\n\r\n", 400, "validation_failed"),
    "an unknown HTTP version": (
        b"GET /api/v1/health HTTP/9.9\r\n" + HOST + b"\r\n",
        400,
        "validation_failed",
    ),
    "a request line over 8 KB": (
        b"GET /api/v1/health?" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
        414,
        "uri_too_long",
    ),
    "an oversized header": (
        b"GET /api/v1/health HTTP/1.1\r\n" + HOST + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n",
        431,
        "header_fields_too_large",
    ),
    "too many headers": (
        b"GET /api/v1/health HTTP/1.1\r\n"
        + HOST
        + b"".join(b"X-H%d: a\r\n" % i for i in range(120))
        + b"\r\n",
        431,
        "header_fields_too_large",
    ),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_refusal_is_a_problem(
    server: LiveServer, problem_validator: jsonschema.Draft202012Validator, name: str
) -> None:
    raw, status, code = REFUSALS[name]
    response = exchange(server, raw)
    assert response.status == status, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert not list(problem_validator.iter_errors(body)), body
    assert (body["status"], body["code"]) == (status, code)
    assert body["request_id"] == response.headers["x-request-id"]


def test_a_refused_request_line_is_not_echoed(server: LiveServer) -> None:
    """The detail never repeats the request: a malformed line may carry a credential."""
    response = exchange(server, b"GET /x?access_token=" + EDGE_TOKEN.encode() + b" HTTP/9\r\n\r\n")
    assert response.status == 400
    assert EDGE_TOKEN.encode() not in response.body


def test_the_server_keeps_serving(server: LiveServer) -> None:
    for raw, _, _ in REFUSALS.values():
        exchange(server, raw)
    assert exchange(server, b"GET /api/v1/health HTTP/1.1\r\n" + HOST + b"\r\n").status == 200
