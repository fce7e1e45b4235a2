"""Credentials never reach the server's logs: not in the access log's request line (a token sent
as a query parameter is refused, but used to be written verbatim), not in gunicorn's warnings
about malformed requests, not through a log format that adds the Authorization header."""

from __future__ import annotations

import logging

import pytest
import requests

from contract_tests.live import LiveServer
from server.serving.redact import REDACTED, RedactSecrets, redact
from tests.reliability.edge import EDGE_TOKEN, exchange

API_KEY = "sk_" + "Q" * 40


def test_tokens_sent_to_the_server_are_not_logged(server: LiveServer) -> None:
    api = server.api_url
    for name in ("access_token", "token", "api_key", "apikey", "key", "session"):
        answer = requests.get(f"{api}/auth/me", params={name: EDGE_TOKEN}, timeout=30)
        assert answer.status_code in (400, 401)
    requests.get(f"{api}/health", params={"x": API_KEY}, timeout=30)
    requests.get(f"{api}/auth/me", headers={"Authorization": f"Bearer {EDGE_TOKEN}"}, timeout=30)
    # gunicorn's own warning about a malformed request line quotes the line.
    exchange(server, f"GET /api/v1/auth/me?access_token={EDGE_TOKEN} HTTP/9.9\r\n\r\n".encode())
    log = server.log.read_text()
    assert "/api/v1/auth/me?access_token=" + REDACTED in log  # the lines are there, redacted
    assert EDGE_TOKEN not in log
    assert EDGE_TOKEN[4:] not in log
    assert API_KEY[3:] not in log


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('"GET /x?access_token=abc123&limit=5 HTTP/1.1" 401', "abc123"),
        ('"GET /x?client_secret=s3cr3t HTTP/1.1" 400', "s3cr3t"),
        ('"GET /x;session=zzz9 HTTP/1.1" 404', "zzz9"),
        ('"GET /x/pat_AbCdEfGhIjKlMnOp HTTP/1.1" 404', "AbCdEfGhIjKlMnOp"),
        ('"-" "Bearer sk_abc.def" 200', "sk_abc.def"),
        ('"-" "Basic dXNlcjpwYXNz" 200', "dXNlcjpwYXNz"),
    ],
)
def test_redact(line: str, secret: str) -> None:
    assert secret not in redact(line)


def test_redact_leaves_ordinary_lines_alone() -> None:
    line = '127.0.0.1 - - "GET /api/v1/workspaces?limit=5&cursor=abc&order=desc HTTP/1.1" 200 52'
    assert redact(line) == line


def test_any_log_format_is_redacted() -> None:
    """The filter works on the formatted line, so a format with the Authorization header
    (``%({authorization}i)s``) is redacted as well."""
    record = logging.LogRecord(
        "gunicorn.access",
        logging.INFO,
        __file__,
        1,
        "%(r)s %({authorization}i)s",
        ({"r": f"GET /x?token={EDGE_TOKEN} HTTP/1.1", "{authorization}i": f"Bearer {EDGE_TOKEN}"},),
        None,
    )
    assert RedactSecrets().filter(record)
    assert EDGE_TOKEN[4:] not in record.getMessage()
