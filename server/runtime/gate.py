"""The contract gate: each API request is admitted or refused before Flask's request cycle.

A request the contract rules out (a missing or bad credential, parameters or a body the spec does
not allow, a role too low for the operation) is answered here with the very problem document its
view would have answered, without the request context, URL adapter and response machinery Flask
spends on every request. Connexion refuses such requests in its validation middleware for the
same reason: a refusal should cost less than the work it refuses.

An admitted request goes on into Flask with its admission (principal, parsed parameters, body
model, open transaction) waiting in the WSGI environ, so nothing is checked twice, and
``GatedFlask`` takes over the gate's request object and URL match instead of building its own.

Everything else goes to Flask untouched, which answers it as it would without the gate: a path or
method no operation has, a redirect, a route that is not an operation (the docs assets), and any
error that is not an ``ApiError`` or an HTTP error (Flask's handlers, signals and
``PROPAGATE_EXCEPTIONS`` apply to it as before). Flask's ``before_request`` and ``after_request``
hooks see admitted requests only: what every answer needs belongs in a WSGI middleware around the
gate, as the request id and security headers are (``server.runtime.middleware``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol, cast

from flask import Flask
from flask.ctx import RequestContext
from werkzeug.exceptions import HTTPException
from werkzeug.routing import MapAdapter, Rule

from server.runtime.errors import ApiError
from server.runtime.middleware import RequestIdMiddleware, StartResponse, WsgiApp, request_id_for
from server.runtime.problem import api_error_response, error_for_http_exception

# Where the gate leaves its request object and URL match for ``GatedFlask`` (a WSGI environ key).
GATE_KEY = "gantry.gate"
# App config key: body limits by endpoint (operationId), over MAX_CONTENT_LENGTH.
BODY_LIMITS_KEY = "GANTRY_BODY_LIMITS"


class Admission(Protocol):
    """What an admitted request holds open until its view has run."""

    def close(self) -> None: ...


class Admit(Protocol):
    """``Dispatcher.admit``: admit a request to the operation ``endpoint`` names (``None`` when
    the endpoint is not an operation) or raise the ``ApiError`` that refuses it."""

    def __call__(self, endpoint: str, http: Any, view_args: dict[str, str]) -> Admission | None: ...


class _Passed(NamedTuple):
    """What the gate hands on to Flask for a request: its request object, the URL adapter it
    bound for the request (``None`` when it shares one adapter among all), and its URL match
    (``None`` when nothing matched: Flask matches again and answers the 404, 405 or redirect)."""

    request: Any
    adapter: MapAdapter | None
    match: tuple[Rule, dict[str, str]] | None


class GatedFlask(Flask):
    """Flask that takes over the gate's request object, URL adapter and URL match for the
    requests it passes on: one request object per request (the body the gate read stays
    readable), one match, and no URL adapter bound unless ``url_for`` asks for one."""

    def request_context(self, environ: dict[str, Any]) -> RequestContext:
        passed: _Passed | None = environ.get(GATE_KEY)
        if passed is None:
            return super().request_context(environ)
        return _GatedRequestContext(self, environ, passed)

    def create_url_adapter(self, request: Any) -> MapAdapter | None:
        passed: _Passed | None = request.environ.get(GATE_KEY) if request is not None else None
        if passed is None or passed.request is not request:
            return super().create_url_adapter(request)
        if passed.adapter is not None:
            return passed.adapter
        if passed.match is None:
            return super().create_url_adapter(request)
        # Matched already: only ``url_for`` needs an adapter bound to this request, if anything.
        bind = super().create_url_adapter
        return cast(MapAdapter, _DeferredUrlAdapter(lambda: bind(request)))


class _DeferredUrlAdapter:
    """A request's URL adapter, bound on first use."""

    __slots__ = ("_adapter", "_bind")

    def __init__(self, bind: Callable[[], MapAdapter | None]) -> None:
        self._bind = bind
        self._adapter: MapAdapter | None = None

    def __getattr__(self, name: str) -> Any:
        if self._adapter is None:
            self._adapter = self._bind()
        return getattr(self._adapter, name)


class _GatedRequestContext(RequestContext):
    def __init__(self, app: Flask, environ: dict[str, Any], passed: _Passed) -> None:
        super().__init__(app, environ, request=passed.request)
        self._match = passed.match

    def match_request(self) -> None:  # Flask's documented hook into the matching
        if self._match is None:
            super().match_request()
        else:
            self.request.url_rule, self.request.view_args = self._match


class ContractGate:
    """The WSGI middleware in front of a ``GatedFlask`` app's request cycle (see the module)."""

    def __init__(
        self,
        app: GatedFlask,
        wsgi_app: WsgiApp,
        admit: Admit,
        error_formats: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.admit = admit
        # Operations that answer errors in a native envelope (``server.runtime.error_formats``).
        self.error_formats: Mapping[str, str] = error_formats or {}
        # Routes that depend on neither host nor subdomain match the same for every request, so
        # one adapter serves them all (binding one per request costs as much as matching).
        self._shared_adapter: MapAdapter | None = (
            None
            if app.url_map.host_matching or app.subdomain_matching
            else app.url_map.bind("gantry.invalid")
        )
        self._request_class = app.request_class

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        app = self.app
        http = self._request_class(environ)
        http.json_module = app.json
        config = app.config
        adapter = self._shared_adapter
        if config["SERVER_NAME"] or config["TRUSTED_HOSTS"]:
            adapter = None  # the host takes part: checked as Flask binds an adapter to a request
        own_adapter = None
        try:
            if adapter is None:
                adapter = own_adapter = app.create_url_adapter(http)
                assert adapter is not None  # None only without a request
            match = cast(
                "tuple[Rule, dict[str, str]]",
                adapter.match(http.path, http.method, return_rule=True),
            )
        except HTTPException:  # no such route or method, a redirect, an untrusted host
            environ[GATE_KEY] = _Passed(http, None, None)
            return self.wsgi_app(environ, start_response)
        rule, view_args = match
        # Flask's limits, which its request object reads through the app context (none yet);
        # an operation may have a body limit of its own (an upload's).
        limits = config.get(BODY_LIMITS_KEY) or {}
        http.max_content_length = limits.get(rule.endpoint, config["MAX_CONTENT_LENGTH"])
        http.max_form_memory_size = config["MAX_FORM_MEMORY_SIZE"]
        http.max_form_parts = config["MAX_FORM_PARTS"]
        environ[GATE_KEY] = _Passed(http, own_adapter, match)
        try:
            admission = self.admit(rule.endpoint or "", http, view_args)
        except ApiError as exc:
            error = exc
        except HTTPException as exc:  # Werkzeug's, from reading the body (413, a disconnect)
            error = error_for_http_exception(exc, http.path)
        except Exception:  # not the client's error: Flask answers it, as without the gate
            return self.wsgi_app(environ, start_response)
        else:
            if admission is None:  # a route that is not an operation
                return self.wsgi_app(environ, start_response)
            try:
                return self.wsgi_app(environ, start_response)
            finally:
                admission.close()
        response = api_error_response(
            error,
            http.method,
            http.path,
            request_id_for(environ),
            self.error_formats.get(rule.endpoint or ""),
        )
        return response(environ, start_response)


def install_contract_gate(
    app: GatedFlask, admit: Admit, error_formats: Mapping[str, str] | None = None
) -> None:
    """Put the contract gate in front of ``app``'s request cycle.

    Install it before ``install_request_hooks``: the request-id middleware must wrap the gate, so
    that the gate's answers carry the request id and the security headers like any other.
    """
    if not isinstance(app, GatedFlask):
        raise TypeError("the contract gate needs a GatedFlask app")
    if isinstance(app.wsgi_app, RequestIdMiddleware):
        raise RuntimeError("install the contract gate before the request hooks, which wrap it")
    app.wsgi_app = ContractGate(  # type: ignore[method-assign]
        app, app.wsgi_app, admit, error_formats
    )
