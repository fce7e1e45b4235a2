"""The one place where errors become ``application/problem+json`` responses (RFC 9457)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from server.runtime.errors import (
    ApiError,
    BadRequest,
    ClientError,
    HeaderFieldsTooLarge,
    InternalError,
    MethodNotAllowed,
    NotFound,
    NotImplementedYet,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
    UriTooLong,
)
from server.runtime.middleware import current_request_id

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("gantry.errors")

# Werkzeug raises these before our dispatcher runs (unknown route, wrong method, body limit);
# the HTTP server refuses with the others (``server.serving``).
_HTTP_EXCEPTIONS: dict[int, type[ApiError]] = {
    400: BadRequest,
    404: NotFound,
    408: RequestTimeout,
    413: PayloadTooLarge,
    414: UriTooLong,
    415: UnsupportedMediaType,
    431: HeaderFieldsTooLarge,
    501: NotImplementedYet,
}


def problem_body(error: ApiError, request_id: str) -> dict[str, Any]:
    """Build the problem document for ``error``."""
    body: dict[str, Any] = {
        "type": f"urn:gantry:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
        "request_id": request_id,
    }
    if error.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    body.update(error.extra())
    return body


def encode_problem(error: ApiError, request_id: str) -> bytes:
    """``problem_body`` as compact UTF-8 JSON, as every other body is written."""
    return orjson.dumps(problem_body(error, request_id))


def problem_response(error: ApiError, request_id: str | None = None) -> Response:
    """Render ``error`` as a problem+json response with its headers."""
    if request_id is None:
        request_id = current_request_id()
    response = Response(
        encode_problem(error, request_id), status=error.status, content_type=PROBLEM_JSON
    )
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def api_error_response(
    error: ApiError, method: str, path: str, request_id: str, error_format: str | None = None
) -> Response:
    """Log ``error`` as its status deserves (4xx are routine, 5xx are not) and render it: as a
    problem document, or in the native envelope its operation declares (``error_format``,
    ``server.runtime.error_formats``).

    The Flask error handler and the dispatcher, which answers its own errors without raising
    them through Flask, both end here.
    """
    if error.status >= 500:
        log.error("%s %s -> %s: %s", method, path, error.status, error.detail)
    elif log.isEnabledFor(logging.INFO):  # no work unless logged
        log.info("%s %s -> %s %s", method, path, error.status, error.code)
    if error_format is not None:
        from server.runtime.error_formats import native_error_response

        return native_error_response(error, error_format, request_id)
    return problem_response(error, request_id)


def error_for_http_exception(exc: HTTPException, path: str) -> ApiError:
    """The ``ApiError`` that answers one of Werkzeug's HTTP errors for a request to ``path``."""
    if exc.code == 405:
        valid = getattr(exc, "valid_methods", None) or []
        return MethodNotAllowed(valid)
    if exc.code == 404 and path.startswith("/api/"):
        return NotFound(f"No route for {path}.")
    error_cls = _HTTP_EXCEPTIONS.get(exc.code or 500)
    if error_cls is not None:
        return error_cls(exc.description)
    if exc.code is not None and 400 <= exc.code < 500:
        error = ClientError(exc.description)
        error.status = exc.code  # type: ignore[misc]
        error.title = exc.name  # type: ignore[misc]
        return error
    return InternalError(InternalError.detail_public)


def install_error_handlers(app: Flask) -> None:
    """Map every exception to problem+json: 4xx are warnings, 5xx errors, unknowns a bare 500."""

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return api_error_response(exc, request.method, request.path, current_request_id())

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Response:
        return _api_error(error_for_http_exception(exc, request.path))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(InternalError(InternalError.detail_public))
