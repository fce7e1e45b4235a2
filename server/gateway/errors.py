"""What the gateway refuses or fails with, in terms both wire formats can render.

A ``GatewayError`` carries an HTTP status and a neutral ``kind``; ``openai_wire`` and
``anthropic_wire`` turn it into their native error envelopes (for a whole response, or as the
terminal event of a stream that already began).
"""

from __future__ import annotations

from typing import Literal

ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "upstream",
    "overloaded",
    "timeout",
]

_KIND_OF_STATUS: dict[int, ErrorKind] = {
    400: "invalid_request",
    401: "authentication",
    403: "permission",
    404: "not_found",
    408: "timeout",
    413: "request_too_large",
    422: "invalid_request",
    429: "rate_limit",
    503: "overloaded",
    504: "timeout",
}


def kind_of_status(status: int) -> ErrorKind:
    """The error kind an HTTP status stands for (any other 4xx is an invalid request)."""
    kind = _KIND_OF_STATUS.get(status)
    if kind is not None:
        return kind
    return "invalid_request" if 400 <= status < 500 else "upstream"


class GatewayError(Exception):
    """A refusal or failure with its status, kind, message and stable ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: ErrorKind | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind: ErrorKind = kind or kind_of_status(status)
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


def invalid(message: str, *, param: str | None = None) -> GatewayError:
    """400: the request cannot be served as written."""
    return GatewayError(400, message, code="invalid_request", param=param)
