"""Planted faults: the bugs the contract suite claims to catch, built into the app one at a time.

They live here, in test code, and nowhere else. Each fault changes the app from the outside
through what ``create_app`` accepts anyway (a wrapper around the guard, a wrapper around the
handler resolver) or through a WSGI middleware around the finished app. Production code has no
fault switch: ``contract_tests.selftest`` builds ``create_app(config, guard=..., handlers=...)``
itself.

A fault names the operation it lives in by ``operationId`` (as any bug lives somewhere); the
suite is not told, and must find it on its own with its ordinary checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from typing import Any

from flask import Response

from server.handlers._common import body_fields
from server.runtime.dispatch import GantryGuard, render, resolve_handler
from server.runtime.errors import Forbidden, NotFound
from server.runtime.pagination import PageRequest

Wrapper = Callable[..., Any]


@dataclass(frozen=True)
class Fault:
    name: str
    what: str  # the bug, in words
    operation_id: str
    guard: Callable[[Any], Any] | None = None  # AppState -> Guard (create_app's ``guard``)
    handlers: Callable[[Any], Any] | None = None  # Operation -> handler (create_app's ``handlers``)
    middleware: Callable[[Any], Any] | None = None  # WSGI app -> WSGI app


# ── building blocks ───────────────────────────────────────────────────────────────────────────


class _GuardWrapper:
    """The server's own guard, with one operation's authenticate/authorize replaced."""

    def __init__(
        self,
        state: Any,
        operation_id: str,
        *,
        authenticate: Wrapper | None = None,
        authorize: Wrapper | None = None,
    ) -> None:
        self.inner = GantryGuard(state)
        self.operation_id = operation_id
        self._authenticate = authenticate
        self._authorize = authorize

    def authenticate(self, operation: Any, http: Any, session: Any) -> Any:
        if self._authenticate is not None and operation.operation_id == self.operation_id:
            return self._authenticate(self.inner, operation, http, session)
        return self.inner.authenticate(operation, http, session)

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> Any:
        if self._authorize is not None and operation.operation_id == self.operation_id:
            return self._authorize(self.inner, operation, principal, path, session)
        return self.inner.authorize(operation, principal, path, session)


def _guard(operation_id: str, **replaced: Wrapper) -> Callable[[Any], Any]:
    return lambda state: _GuardWrapper(state, operation_id, **replaced)


def _handler(operation_id: str, wrap: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A handler resolver that wraps one operation's handler with ``wrap``."""

    def resolve(operation: Any) -> Any:
        handler = resolve_handler(operation)
        return wrap(handler) if operation.operation_id == operation_id else handler

    return resolve


def _middleware(
    method: str,
    path_part: str,
    edit: Callable[[int, list[tuple[str, str]], bytes], tuple[list[tuple[str, str]], bytes]],
) -> Callable[[Any], Any]:
    """A WSGI middleware that rewrites the responses of matching requests."""

    def install(app: Any) -> Any:
        def wrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") != method or path_part not in environ.get(
                "PATH_INFO", ""
            ):
                return app(environ, start_response)  # type: ignore[no-any-return]
            captured: dict[str, Any] = {}

            def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                captured["status"], captured["headers"] = status, headers
                return lambda data: None

            body = b"".join(app(environ, start))
            code = int(captured["status"].split()[0])
            headers, body = edit(code, list(captured["headers"]), body)
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
            start_response(captured["status"], headers)
            return [body]

        return wrapped

    return install


# ── the faults ────────────────────────────────────────────────────────────────────────────────


def _skip_auth() -> Fault:
    return Fault(
        "skips_auth",
        "an operation that skips authentication and authorisation",
        "listAuditLog",
        guard=_guard(
            "listAuditLog",
            authenticate=lambda inner, op, http, session: None,
            authorize=lambda inner, op, principal, path, session: None,
        ),
    )


def _wrong_type() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            result = handler(req)
            result["settings"] = {
                **result["settings"],
                "max_members": str(result["settings"]["max_members"]),
            }
            return result

        return faulty

    return Fault(
        "wrong_type_field",
        "a handler that returns settings.max_members as a string",
        "getWorkspace",
        handlers=_handler("getWorkspace", wrap),
    )


def _undocumented_status() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            response = render(handler(req))
            response.status_code = 202
            return response

        return faulty

    return Fault(
        "undocumented_status",
        "an update answering 202, which the spec does not document",
        "updateWorkspace",
        handlers=_handler("updateWorkspace", wrap),
    )


class _RepeatingPage(PageRequest):
    """Issues the next cursor one item early, so the next page repeats the last item."""

    def respond(self, rows: Any, serialize: Any, key: Any, total: int | None = None) -> Any:
        body = super().respond(rows, serialize, key, total)
        page = rows[: self.limit]
        if body["next_cursor"] is not None and len(page) >= 2:
            body["next_cursor"] = self.codec.encode(self.scope, key(page[-2]))
        return body


def _page_fault(
    name: str, what: str, operation_id: str, change: Callable[[PageRequest], PageRequest]
) -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            req.page = change(req.page)
            return handler(req)

        return faulty

    return Fault(name, what, operation_id, handlers=_handler(operation_id, wrap))


def _copy_page(
    page: PageRequest, cls: type[PageRequest] = PageRequest, **changes: Any
) -> PageRequest:
    values = {f.name: getattr(page, f.name) for f in fields(page)}
    values.update(changes)
    return cls(**values)


def _list_repeats() -> Fault:
    return _page_fault(
        "list_repeats_item",
        "a list whose next page repeats the last item",
        "listMembers",
        lambda page: _copy_page(page, _RepeatingPage),
    )


def _list_ignores_limit() -> Fault:
    return _page_fault(
        "list_ignores_limit",
        "a list that always serves 50 items per page",
        "listApiKeys",
        lambda page: _copy_page(page, limit=50),
    )


def _boundary_500() -> Fault:
    def wrap(handler: Any) -> Any:
        def faulty(req: Any) -> Any:
            if len(str(body_fields(req)[0].get("name", ""))) == 100:  # the spec's maxLength
                raise RuntimeError("name buffer overflow")
            return handler(req)

        return faulty

    return Fault(
        "boundary_500",
        "a create that fails with 500 on a name of exactly maxLength",
        "createWorkspace",
        handlers=_handler("createWorkspace", wrap),
    )


def _leaks_403() -> Fault:
    def authorize(inner: Any, op: Any, principal: Any, path: Any, session: Any) -> Any:
        try:
            return inner.authorize(op, principal, path, session)
        except NotFound:
            raise Forbidden(
                "You are not a member of this workspace.", code="insufficient_role"
            ) from None

    return Fault(
        "leaks_403",
        "a non-member told 403 (the workspace exists) instead of 404",
        "getWorkspace",
        guard=_guard("getWorkspace", authorize=authorize),
    )


def _no_www_authenticate() -> Fault:
    def edit(
        code: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes]:
        if code == 401:
            headers = [(k, v) for k, v in headers if k.lower() != "www-authenticate"]
        return headers, body

    return Fault(
        "no_www_authenticate",
        "a 401 without WWW-Authenticate",
        "getMe",
        middleware=_middleware("GET", "/api/v1/auth/me", edit),
    )


def _not_problem_json() -> Fault:
    def edit(
        code: int, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[list[tuple[str, str]], bytes]:
        if code == 404:
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("Content-Type", "application/json"))
            body = json.dumps({"error": "not found"}).encode()
        return headers, body

    return Fault(
        "not_problem_json",
        "a 404 answered with a plain JSON body, not a problem",
        "revokeApiKey",
        middleware=_middleware("DELETE", "/api-keys/", edit),
    )


def _no_csrf() -> Fault:
    def authenticate(inner: Any, op: Any, http: Any, session: Any) -> Any:
        environ = http.environ
        saved = {k: environ.get(k) for k in ("HTTP_X_REQUESTED_WITH", "HTTP_ORIGIN")}
        environ["HTTP_X_REQUESTED_WITH"] = "XMLHttpRequest"  # as if nobody looked at them
        environ["HTTP_ORIGIN"] = http.host_url.rstrip("/")
        try:
            return inner.authenticate(op, http, session)
        finally:
            for key, value in saved.items():
                if value is None:
                    environ.pop(key, None)
                else:
                    environ[key] = value

    return Fault(
        "no_csrf_check",
        "a cookie write accepted without the CSRF header",
        "createApiKey",
        guard=_guard("createApiKey", authenticate=authenticate),
    )


FAULTS: tuple[Fault, ...] = (
    _skip_auth(),
    _wrong_type(),
    _undocumented_status(),
    _list_repeats(),
    _list_ignores_limit(),
    _boundary_500(),
    _leaks_403(),
    _no_www_authenticate(),
    _not_problem_json(),
    _no_csrf(),
)


def by_name(name: str) -> Fault:
    for fault in FAULTS:
        if fault.name == name:
            return fault
    raise KeyError(name)


__all__ = ["FAULTS", "Fault", "Response", "by_name"]
