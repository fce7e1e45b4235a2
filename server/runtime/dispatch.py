"""The dispatcher: the one layer between Flask and the handlers.

``Dispatcher.bind(operation)`` is what ``generated.routes.register_routes`` calls for each
operation. It compiles the operation's parameter and body parsers once, resolves the handler
``server.handlers.<module>.<name>`` (failing start-up if it is missing), and returns the view
that runs, per request: authenticate → parse parameters → authorise → parse body → handler →
render, inside one database transaction.

The steps before the handler are the operation's *admission*. ``Dispatcher.admit`` runs it on
its own, so the contract gate (``server.runtime.gate``) can answer a request the spec rules out
before Flask's request cycle starts; the view then runs only the handler. Without a gate the
view admits the request itself: same steps, same answers.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from types import ModuleType
from typing import Any, Protocol

import orjson
from flask import Response
from flask import request as flask_request
from pydantic import BaseModel
from sqlalchemy.orm import Session
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.wrappers import Request as WerkzeugRequest

from server.domain import roles
from server.domain.actors import Principal
from server.domain.credentials import Stamp, take_deferred_stamps, write_deferred_stamps
from server.domain.errors import RuleError
from server.runtime import auth
from server.runtime.body import BodyParser
from server.runtime.context import AfterCommit, Reply, Request
from server.runtime.error_formats import error_formats
from server.runtime.errors import ApiError, Forbidden, Unauthenticated, from_rule
from server.runtime.middleware import REQUEST_ID_KEY, request_id_for
from server.runtime.pagination import CursorCodec, page_request
from server.runtime.params import ParameterParser, ParsedParameters, RawParameters
from server.runtime.present import Presenter, Shape
from server.runtime.problem import api_error_response
from server.runtime.schemas import SchemaBundle
from server.state import AppState
from server.storage.users import lock_active_superadmins
from server.storage.workspaces import lock_workspace

Handler = Callable[[Request], Any]
View = Callable[..., Response]

# Where ``Dispatcher.admit`` leaves an admitted request for the view (a WSGI environ key).
ADMISSION_KEY = "gantry.admission"


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


# Datetimes go through ``json_default`` (RFC 3339 with ``Z``); keys that are not strings are
# written as the standard encoder writes them.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS
_JSON_ENCODER = json.JSONEncoder(default=json_default, ensure_ascii=False, separators=(",", ":"))
JSON_CONTENT_TYPE = "application/json"


def encode_json(value: Any) -> bytes:
    """A response body: compact UTF-8 JSON, by orjson (a 20-item page in a tenth of the time of
    the standard encoder), or by the standard encoder for what orjson refuses (an integer beyond
    64 bits, nesting deeper than 254 levels), so no value the API could answer before is lost."""
    try:
        return orjson.dumps(value, default=json_default, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return _JSON_ENCODER.encode(value).encode()


def render(result: Any, shapes: dict[int, Shape] | None = None) -> Response:
    """Turn a handler's return value into a response, its body shaped by the schema the
    operation documents for the status (``shapes``, from ``Presenter``)."""
    if result is None:
        return Response(status=204)
    kind = type(result)
    if kind is dict or kind is list:  # the common case: a value answered with 200
        shape = shapes.get(200) if shapes else None
        body = shape(result) if shape is not None else result
        return Response(encode_json(body), status=200, content_type=JSON_CONTENT_TYPE)
    if isinstance(result, Response):
        return result
    reply = result if isinstance(result, Reply) else Reply(body=result)
    if shapes and reply.body is not None and reply.media_type == JSON_CONTENT_TYPE:
        shape = shapes.get(reply.status)
        if shape is not None:
            reply.body = shape(reply.body)
    if not reply.headers and not reply.cookies and reply.media_type == JSON_CONTENT_TYPE:
        if reply.body is None:
            return Response(status=reply.status)
        return Response(
            encode_json(reply.body), status=reply.status, content_type=JSON_CONTENT_TYPE
        )
    if reply.body is None:
        response = Response(status=reply.status)
    elif isinstance(reply.body, (bytes, str)) and reply.media_type != "application/json":
        response = Response(reply.body, status=reply.status, mimetype=reply.media_type)
    else:
        response = Response(encode_json(reply.body), status=reply.status, mimetype=reply.media_type)
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
        stamps: list[Stamp] = []
        try:
            if ok:
                self.session.commit()
                stamps = take_deferred_stamps(self.session)
            else:
                self.session.rollback()
        finally:
            self.session.close()
            self.session = None
        if stamps:
            write_deferred_stamps(self._factory, stamps)


class Admission:
    """A request admitted ahead of its view: the handler's ``Request`` and its open transaction."""

    __slots__ = ("request", "tx")

    def __init__(self, request: Request, tx: _Transaction) -> None:
        self.request = request
        self.tx = tx

    def close(self) -> None:
        """Roll back and close the transaction if the view never finished it (a no-op if it did)."""
        self.tx.finish(False)


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
        self.schemes = auth.declared_schemes(state.spec_document)

    def authenticate(
        self, operation: Any, http: WerkzeugRequest, session: Callable[[], Session]
    ) -> Principal | None:
        """The caller of a secured operation (401 if required and missing or invalid)."""
        if not operation.security:
            return None
        environ = http.environ  # the raw WSGI keys: what ``http.headers.get`` would read
        authorization = environ.get("HTTP_AUTHORIZATION")
        if authorization is None:  # a key in a header of its own (``x-api-key``), if declared
            authorization = self.schemes.header_credential(operation.security, environ)
        creds = auth.HttpCredentials(
            method=http.method,
            authorization=authorization,
            # A bearer header wins over the cookie, so the cookie header is parsed only without one.
            session_cookie=None if authorization else http.cookies.get(auth.SESSION_COOKIE),
            requested_with=environ.get("HTTP_X_REQUESTED_WITH"),
            origin=environ.get("HTTP_ORIGIN"),
        )
        if () in operation.security and not (creds.authorization or creds.session_cookie):
            return None  # optional security, nothing presented
        principal = auth.authenticate(self.state.credentials, session(), creds, self.state.clock())
        if principal is None:
            # A secured operation without a credential is a 401 before anything else is read.
            raise Unauthenticated()
        if principal.kind == "session":  # only sessions need CSRF
            auth.check_csrf(principal, creds, self.state.allowed_origins)
        return principal

    def authorize(
        self,
        operation: Any,
        principal: Principal | None,
        path: dict[str, Any],
        session: Callable[[], Session],
    ) -> str | None:
        """Enforce ``x-gantry-min-role``; the caller's role in the request's workspace, if any.

        That workspace is the path's ``workspace_id``, or on a flat item path the workspace that
        owns the item (``AppState.ownership``; 404 for an unknown id), which is then added to
        ``path`` as ``workspace_id``: a handler reads the workspace the same way on both paths.
        """
        if not operation.security or (() in operation.security and principal is None):
            return None
        scope = self.schemes.required_scope(operation.security)
        if scope is not None:
            # A scoped credential (the AI gateway's): the scope is the permission; the domain
            # resolves the workspace it acts in.
            auth.require_declared_scope(principal, scope)
            return None
        item = self.state.ownership.item(operation.operation_id)
        if item is not None and principal is not None:
            path[auth.WORKSPACE_PARAM] = item.workspace_of(session(), path)
        if principal is not None and operation.method in auth.UNSAFE_METHODS:
            _lock_writers_rights(session(), principal, operation.min_role, path)
        return auth.authorize(
            self.state.credentials,
            session(),
            principal,
            operation.min_role,
            path,
            operation.method,
        )


def _lock_writers_rights(
    db: Session, principal: Principal, min_role: str | None, path: dict[str, Any]
) -> None:
    """A write reads its caller's rights under the lock the rules on those rights take, so the
    rights it is admitted with still hold when it commits (a concurrent demotion either waits
    for it or is seen by it): the workspace's lock for a role in the request's workspace (the
    path's, or the owner of the item a flat path names, which ``authorize`` has put in ``path``),
    the active superadmins' for the superadmin flag.

    The lock order (``server.storage.users``) puts the superadmins before any credential and
    credentials before workspaces: the caller's last-use stamp, pending since authentication,
    is written before a workspace's lock and after the superadmins'.
    """
    workspace_id = path.get("workspace_id")
    if isinstance(workspace_id, str):
        lock_workspace(db, workspace_id)
    elif min_role == roles.SUPERADMIN and principal.is_superadmin:
        with db.no_autoflush:
            active = lock_active_superadmins(db)
        if principal.user_id not in active:
            raise Forbidden("Instance administrators only.", code="forbidden")


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
        write_session_factory: Callable[[], Session] | None = None,
        state: Any = None,
        handlers: Callable[[Any], Handler] | None = None,
    ) -> None:
        self.bundle = bundle
        self.models = models
        self.guard = guard
        self.cursors = cursors
        self.session_factory = session_factory or _no_database
        # For operations with an unsafe method: transactions begun as writers (``Database``).
        self.write_session_factory = write_session_factory or self.session_factory
        self._session_factories: dict[str, Callable[[], Session]] = {}
        self.state = state
        self.resolve = handlers or resolve_handler
        self.presenter = Presenter(bundle)
        # Operations that answer errors in a native envelope (``server.runtime.error_formats``).
        self.error_formats = error_formats(getattr(state, "spec_document", None))
        self._admissions: dict[
            str, Callable[[WerkzeugRequest, dict[str, str], _Transaction], Request]
        ] = {}

    def admit(
        self, endpoint: str, http: WerkzeugRequest, view_args: dict[str, str]
    ) -> Admission | None:
        """Admit a request to the operation ``endpoint`` names ahead of its view, or raise the
        ``ApiError`` its view would answer; ``None`` when no bound operation has that endpoint.

        The admission waits in ``http.environ`` for the view, which runs only the handler.
        """
        admit = self._admissions.get(endpoint)
        if admit is None:
            return None
        tx = _Transaction(self._session_factories[endpoint])
        try:
            admission = Admission(admit(http, view_args, tx), tx)
        except BaseException:
            tx.finish(False)
            raise
        http.environ[ADMISSION_KEY] = admission
        return admission

    def bind(self, operation: Any) -> View:
        """The Flask view for ``operation``; raises ``MissingHandlerError`` if unresolvable.

        Everything that depends only on the operation is decided here, once: the compiled
        parameter and body parsers, which parts of the request they read at all, and the path
        parameters to rename. The view does only per-request work.
        """
        handler = self.resolve(operation)
        params = ParameterParser(operation.parameters, self.bundle)
        body = (
            BodyParser(operation.request_body, self.bundle, self.models)
            if operation.request_body is not None
            else None
        )
        renames = {
            p.python_name: p.name
            for p in operation.parameters
            if p.location == "path" and p.python_name != p.name
        }
        reads_cookies = "cookie" in params.locations
        has_parameters = bool(params.locations)
        guard, cursors, state, factory = self.guard, self.cursors, self.state, self.session_factory
        if operation.method in auth.UNSAFE_METHODS:
            factory = self.write_session_factory
        authenticate, authorize = guard.authenticate, guard.authorize
        op_id = operation.operation_id
        is_list = operation.is_list
        shapes = self.response_shapes(operation)
        error_format = self.error_formats.get(op_id)
        # One proxy lookup per request instead of one per attribute.
        current_request = flask_request._get_current_object  # type: ignore[attr-defined]

        def admit(http: WerkzeugRequest, raw_path: dict[str, str], tx: _Transaction) -> Request:
            """Everything before the handler: raises ``ApiError`` for a request the spec or the
            caller's rights rule out."""
            environ = http.environ
            principal = authenticate(operation, http, tx)
            query_string = environ.get("QUERY_STRING")
            if query_string or has_parameters:
                parsed = params.parse(
                    RawParameters(
                        path={renames.get(k, k): v for k, v in raw_path.items()}
                        if renames
                        else raw_path,
                        # No query string: nothing to parse (and no unknown parameter).
                        query=http.args if query_string else _NO_QUERY,
                        headers=http.headers,
                        cookies=http.cookies if reads_cookies else _NO_COOKIES,
                    )
                )
            else:  # no parameters declared, none sent: nothing to parse
                parsed = ParsedParameters()
            role = authorize(operation, principal, parsed.path, tx)
            return Request(
                operation_id=op_id,
                path=parsed.path,
                query=parsed.query,
                headers=parsed.headers,
                cookies=parsed.cookies,
                body=body.parse(http) if body is not None else None,
                principal=principal,
                role=role,
                page=page_request(op_id, parsed.path, parsed.query, cursors) if is_list else None,
                request_id=environ.get(REQUEST_ID_KEY) or request_id_for(environ),
                client_ip=environ.get("REMOTE_ADDR"),  # ``http.remote_addr``
                user_agent=environ.get("HTTP_USER_AGENT") or None,  # ``http.user_agent``
                state=state,
                _session=tx,
            )

        def view(**raw_path: str) -> Response:
            http: WerkzeugRequest = current_request()
            environ = http.environ
            admission: Admission | None = environ.pop(ADMISSION_KEY, None)
            if admission is not None and admission.request.operation_id != op_id:
                admission.close()  # admitted for another route: not this view's to use
                admission = None
            tx = admission.tx if admission is not None else _Transaction(factory)
            ok = False
            try:
                # Admitted by the contract gate ahead of Flask, or (without one) here.
                req = admission.request if admission is not None else admit(http, raw_path, tx)
                result = handler(req)
                if isinstance(result, AfterCommit):
                    # Slow work that needs no database (a call to another service) runs once
                    # the request's transaction has ended, holding neither locks nor a
                    # connection.
                    tx.finish(True)
                    result = result.produce()
                response = render(result, shapes)
                ok = True
                return response
            except (ApiError, RuleError) as exc:
                # Answered here rather than raised through Flask's error handling, which would
                # only find its way back to the same renderer.
                error = from_rule(exc) if isinstance(exc, RuleError) else exc
                return api_error_response(
                    error, http.method, http.path, environ.get(REQUEST_ID_KEY, ""), error_format
                )
            finally:
                tx.finish(ok)

        self._admissions[op_id] = admit
        self._session_factories[op_id] = factory
        view.__name__ = operation.handler_name
        view.__doc__ = f"{operation.method} {operation.path} ({op_id})"
        return view

    def response_shapes(self, operation: Any) -> dict[int, Shape]:
        """The shape of each documented 2xx JSON response of ``operation``, by status."""
        shapes: dict[int, Shape] = {}
        for response in operation.responses:
            if not (response.status.isdigit() and response.status.startswith("2")):
                continue
            for media in response.content:
                if media.media_type == JSON_CONTENT_TYPE and media.schema:
                    shapes[int(response.status)] = self.presenter.shape(media.schema)
        return shapes


_NO_QUERY: ImmutableMultiDict[str, str] = ImmutableMultiDict()
_NO_COOKIES: dict[str, str] = {}


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
