"""The dispatcher: the one layer between Flask and the handlers.

``Dispatcher.bind(operation)`` is what ``generated.routes.register_routes`` calls for each
operation. It compiles the operation's parameter and body parsers once, resolves the handler
``server.handlers.<module>.<name>`` (failing start-up if it is missing), and returns the view
that runs, per request: authenticate → parse parameters → authorise → parse body → handler →
render, inside one database transaction.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from types import ModuleType
from typing import Any, Protocol

from flask import Response, g
from flask import request as flask_request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from werkzeug.wrappers import Request as WerkzeugRequest

from server.runtime import auth
from server.runtime.auth import Principal
from server.runtime.body import BodyParser
from server.runtime.context import Reply, Request
from server.runtime.pagination import CursorCodec, page_request
from server.runtime.params import ParameterParser, RawParameters
from server.runtime.schemas import SchemaBundle
from server.state import AppState

Handler = Callable[[Request], Any]
View = Callable[..., Response]


class MissingHandlerError(RuntimeError):
    """Raised at start-up when the spec has an operation with no handler."""


def json_default(value: Any) -> Any:
    """JSON encoding for the types handlers return besides plain JSON values."""
    if isinstance(value, datetime):
        stamp = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return stamp.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def render(result: Any) -> Response:
    """Turn a handler's return value into a response."""
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status=204)
    reply = result if isinstance(result, Reply) else Reply(body=result)
    if reply.body is None:
        response = Response(status=reply.status)
    elif isinstance(reply.body, (bytes, str)) and reply.media_type != "application/json":
        response = Response(reply.body, status=reply.status, mimetype=reply.media_type)
    else:
        payload = json.dumps(reply.body, default=json_default, ensure_ascii=False)
        response = Response(payload, status=reply.status, mimetype=reply.media_type)
    for name, value in reply.headers.items():
        response.headers[name] = value
    for cookie in reply.cookies:
        response.set_cookie(
            cookie.name,
            cookie.value,
            max_age=cookie.max_age,
            httponly=cookie.http_only,
            samesite=cookie.same_site,
            secure=cookie.secure,
            path=cookie.path,
        )
    return response


class _Transaction:
    """A database session opened on first use, so operations that never touch storage
    (health, docs) pay nothing for it."""

    __slots__ = ("_factory", "session")

    def __init__(self, factory: Callable[[], Session]) -> None:
        self._factory = factory
        self.session: Session | None = None

    def __call__(self) -> Session:
        if self.session is None:
            self.session = self._factory()
        return self.session

    def finish(self, ok: bool) -> None:
        if self.session is None:
            return
        try:
            if ok:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            self.session.close()
            self.session = None


class Guard(Protocol):
    """Who may call an operation: the auth step of the dispatcher, pluggable so the mock
    server can check credentials by presence while the real server checks them in storage."""

    def authenticate(
        self, operation: Any, http: WerkzeugRequest, session: Callable[[], Session]
    ) -> Principal | None: ...

    def authorize(
        self,
        operation: Any,
        principal: Principal | None,
        path: dict[str, Any],
        session: Callable[[], Session],
    ) -> str | None: ...


class GantryGuard:
    """The server's guard: Gantry credentials from storage, CSRF, least roles from the spec."""

    def __init__(self, state: AppState) -> None:
        self.state = state

    def authenticate(
        self, operation: Any, http: WerkzeugRequest, session: Callable[[], Session]
    ) -> Principal | None:
        """The caller of a secured operation (401 if required and missing or invalid)."""
        if not operation.security:
            return None
        creds = auth.HttpCredentials(
            method=http.method,
            authorization=http.headers.get("Authorization"),
            session_cookie=http.cookies.get(auth.SESSION_COOKIE),
            requested_with=http.headers.get("X-Requested-With"),
            origin=http.headers.get("Origin"),
        )
        if () in operation.security and not (creds.authorization or creds.session_cookie):
            return None  # optional security, nothing presented
        principal = auth.authenticate(self.state.credentials, session(), creds)
        if principal is not None:
            auth.check_csrf(principal, creds, self.state.allowed_origins(http.host_url))
        return principal

    def authorize(
        self,
        operation: Any,
        principal: Principal | None,
        path: dict[str, Any],
        session: Callable[[], Session],
    ) -> str | None:
        """Enforce ``x-gantry-min-role``; the caller's role in the path's workspace, if any."""
        if not operation.security or (() in operation.security and principal is None):
            return None
        return auth.authorize(
            self.state.credentials, session(), principal, operation.min_role, path
        )


class Dispatcher:
    """Builds one view per operation over compiled validators and resolved handlers."""

    def __init__(
        self,
        *,
        bundle: SchemaBundle,
        models: ModuleType | None,
        guard: Guard,
        cursors: CursorCodec,
        session_factory: Callable[[], Session] | None = None,
        state: Any = None,
        handlers: Callable[[Any], Handler] | None = None,
    ) -> None:
        self.bundle = bundle
        self.models = models
        self.guard = guard
        self.cursors = cursors
        self.session_factory = session_factory or _no_database
        self.state = state
        self.resolve = handlers or resolve_handler

    def bind(self, operation: Any) -> View:
        """The Flask view for ``operation``; raises ``MissingHandlerError`` if unresolvable."""
        handler = self.resolve(operation)
        params = ParameterParser(operation.parameters, self.bundle)
        body = (
            BodyParser(operation.request_body, self.bundle, self.models)
            if operation.request_body is not None
            else None
        )
        path_names = {p.python_name: p.name for p in operation.parameters if p.location == "path"}
        guard, cursors, state, factory = self.guard, self.cursors, self.state, self.session_factory
        op_id = operation.operation_id
        is_list = operation.is_list

        def view(**raw_path: str) -> Response:
            http = flask_request
            tx = _Transaction(factory)
            ok = False
            try:
                principal = guard.authenticate(operation, http, tx)
                parsed = params.parse(
                    RawParameters(
                        path={path_names.get(k, k): v for k, v in raw_path.items()},
                        query=http.args,
                        headers=http.headers,
                        cookies=http.cookies,
                    )
                )
                role = guard.authorize(operation, principal, parsed.path, tx)
                req = Request(
                    operation_id=op_id,
                    path=parsed.path,
                    query=parsed.query,
                    headers=parsed.headers,
                    cookies=parsed.cookies,
                    body=body.parse(http) if body is not None else None,
                    principal=principal,
                    role=role,
                    page=page_request(op_id, parsed.path, parsed.query, cursors)
                    if is_list
                    else None,
                    request_id=g.request_id,
                    client_ip=http.remote_addr,
                    user_agent=http.user_agent.string or None,
                    state=state,
                    _session=tx,
                )
                response = render(handler(req))
                ok = True
                return response
            finally:
                tx.finish(ok)

        view.__name__ = operation.handler_name
        view.__doc__ = f"{operation.method} {operation.path} ({op_id})"
        return view


def _no_database() -> Session:
    raise RuntimeError("this app has no database")


def resolve_handler(operation: Any) -> Handler:
    """``server.handlers.<handler_module>.<handler_name>``, or ``MissingHandlerError``."""
    module_name = f"server.handlers.{operation.handler_module}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        module = None
    handler = getattr(module, operation.handler_name, None) if module else None
    if not callable(handler):
        raise MissingHandlerError(
            f"no handler for operationId {operation.operation_id!r}: "
            f"define {operation.handler_name}(request) in {module_name.replace('.', '/')}.py"
        )
    return handler  # type: ignore[no-any-return]
