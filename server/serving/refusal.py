"""gunicorn's own refusals (a malformed request line or header, a request line or headers over
their limits, a request not received in time) as the problem documents the app answers with."""

from __future__ import annotations

from http import HTTPStatus

from gunicorn.util import http_date
from werkzeug.exceptions import default_exceptions

from server.runtime.errors import ApiError, InternalError
from server.runtime.middleware import SECURITY_HEADERS, new_request_id
from server.runtime.problem import PROBLEM_JSON, encode_problem, error_for_http_exception


def error_for_status(status: int) -> ApiError:
    """The ``ApiError`` answering a refusal gunicorn makes with ``status``."""
    exception = default_exceptions.get(status)
    if exception is None:
        return InternalError(InternalError.detail_public)
    return error_for_http_exception(exception(), "")


def problem_message(error: ApiError) -> bytes:
    """A complete HTTP/1.1 response for ``error``, closing the connection: the status, the
    problem document and the headers every answer of the app carries."""
    request_id = new_request_id()  # the request could not be read: its X-Request-Id neither
    body = encode_problem(error, request_id)
    headers = [
        ("Date", http_date()),
        ("Connection", "close"),
        ("Content-Type", PROBLEM_JSON),
        ("Content-Length", str(len(body))),
        *error.headers.items(),
        ("X-Request-Id", request_id),
        *SECURITY_HEADERS,
    ]
    head = f"HTTP/1.1 {error.status} {_reason(error.status)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    return head.encode("latin-1") + b"\r\n" + body


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
