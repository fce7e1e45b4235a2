"""The one exception hierarchy of the API.

Every error a client can cause is an ``ApiError`` subclass carrying its HTTP status,
title and stable ``code``; ``server.runtime.problem`` turns any of them into
``application/problem+json``. Handlers raise these and never build error responses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, NamedTuple

from server.domain import errors as rule_errors
from server.domain.errors import RuleError


class FieldError(NamedTuple):
    """One failed rule: ``field`` is a dotted location such as ``body.name`` or ``query.limit``.

    A named tuple rather than a dataclass: an invalid request builds one per failure, and
    tuples are built and sorted (by field, then message) in C.
    """

    field: str
    message: str


class ApiError(Exception):
    """Root of every error the API answers with a problem document."""

    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal Server Error"
    code: ClassVar[str] = "internal_error"

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        errors: Iterable[FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.errors = tuple(errors)
        self.headers: dict[str, str] = dict(headers or {})

    def extra(self) -> dict[str, Any]:
        """Extension members added to the problem body beyond the standard ones."""
        return {}


class ClientError(ApiError):
    """The request cannot be served as sent (4xx)."""

    status = 400
    title = "Bad Request"
    code = "validation_failed"


class ServerError(ApiError):
    """The server failed (5xx); the detail never carries internals."""


class BadRequest(ClientError):
    """Raised when parameters or the body break the spec or a documented rule."""


class Unauthenticated(ClientError):
    """Raised when no credential was sent, or the credential is unknown, expired or revoked."""

    status = 401
    title = "Unauthorized"
    code = "unauthenticated"

    def __init__(self, detail: str | None = None, *, code: str | None = None) -> None:
        super().__init__(
            detail or "Authentication required.",
            code=code,
            headers={"WWW-Authenticate": 'Bearer realm="gantry"'},
        )


class Forbidden(ClientError):
    """Raised for an authenticated caller whose role, scope or credential kind is too weak,
    and for cookie writes that fail the CSRF check."""

    status = 403
    title = "Forbidden"
    code = "forbidden"


class NotFound(ClientError):
    """Raised when a resource does not exist or is not visible to the caller ("404, not 403")."""

    status = 404
    title = "Not Found"
    code = "not_found"


class MethodNotAllowed(ClientError):
    """Raised when the path exists but not with this method; ``Allow`` lists the methods."""

    status = 405
    title = "Method Not Allowed"
    code = "method_not_allowed"

    def __init__(self, allowed: Iterable[str]) -> None:
        methods = ", ".join(sorted(set(allowed)))
        super().__init__(
            f"Allowed methods: {methods}.",
            headers={"Allow": methods},
        )


class RequestTimeout(ClientError):
    """Raised when the client has not sent the whole request (headers and body) in the read
    timeout; the connection closes after the answer."""

    status = 408
    title = "Request Timeout"
    code = "request_timeout"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or "The request was not received in time.")


class Conflict(ClientError):
    """Raised when the request clashes with the current state (duplicates, last owner, …)."""

    status = 409
    title = "Conflict"
    code = "conflict"


class PayloadTooLarge(ClientError):
    """Raised when the body exceeds the configured limit."""

    status = 413
    title = "Payload Too Large"
    code = "payload_too_large"


class UriTooLong(ClientError):
    """Raised (by the HTTP server) when the request line exceeds its limit."""

    status = 414
    title = "URI Too Long"
    code = "uri_too_long"


class UnsupportedMediaType(ClientError):
    """Raised when the body's Content-Type is not one the operation documents."""

    status = 415
    title = "Unsupported Media Type"
    code = "unsupported_media_type"


class RateLimited(ClientError):
    """Raised when a caller exceeds a rate limit; ``Retry-After`` says when to retry."""

    status = 429
    title = "Too Many Requests"
    code = "rate_limited"

    def __init__(self, retry_after_s: int, detail: str | None = None) -> None:
        super().__init__(
            detail or f"Rate limit exceeded; retry in {retry_after_s} s.",
            headers={"Retry-After": str(max(1, retry_after_s))},
        )


class HeaderFieldsTooLarge(ClientError):
    """Raised (by the HTTP server) when the request headers are too many or too large."""

    status = 431
    title = "Request Header Fields Too Large"
    code = "header_fields_too_large"


class NotImplementedYet(ServerError):
    """Raised by the stubs `gantry scaffold` writes for operations that have no handler yet."""

    status = 501
    title = "Not Implemented"
    code = "not_implemented"


class InternalError(ServerError):
    """Raised (or substituted) for anything unexpected; rendered without internals."""

    detail_public = "The server could not complete the request."


class _RefusedByRule(ClientError):
    """A domain rule's refusal (``server.domain.errors``) as the problem its kind answers."""

    def __init__(self, error: RuleError, status: int, title: str) -> None:
        super().__init__(
            error.detail,
            code=error.code,
            errors=(FieldError(field, message) for field, message in error.errors),
            headers=_UNAUTHENTICATED_HEADERS if status == 401 else None,
        )
        self.status = status  # type: ignore[misc]  # instance override of the class default
        self.title = title  # type: ignore[misc]
        self._extra = error.extra

    def extra(self) -> dict[str, Any]:
        return dict(self._extra)


# Each kind of refusal and its status: the one place a domain rule meets HTTP.
_RULE_STATUS: dict[type[RuleError], type[ClientError]] = {
    rule_errors.Invalid: BadRequest,
    rule_errors.NotAuthenticated: Unauthenticated,
    rule_errors.Forbidden: Forbidden,
    rule_errors.NotFound: NotFound,
    rule_errors.Conflict: Conflict,
}
_UNAUTHENTICATED_HEADERS = {"WWW-Authenticate": 'Bearer realm="gantry"'}


def from_rule(error: RuleError) -> ApiError:
    """The problem a domain refusal answers."""
    for kind in type(error).__mro__:
        answer = _RULE_STATUS.get(kind)
        if answer is not None:
            return _RefusedByRule(error, answer.status, answer.title)
    return _RefusedByRule(error, BadRequest.status, BadRequest.title)
