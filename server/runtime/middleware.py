"""Request-wide concerns that are not per-operation: request ids and security headers.

Both live in a small WSGI middleware around the Flask app rather than in Flask's
``before_request``/``after_request`` hooks: every response gets them, including those Flask
builds itself, and the per-request cost is a dictionary look-up and a list append instead of two
hook dispatches and a header-by-header scan. The request id sits in the WSGI environ under
``REQUEST_ID_KEY``; ``flask.g.request_id`` reads it from there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from flask import Flask, request
from flask.ctx import _AppCtxGlobals

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
}
# The docs page loads only its own bundled assets; no CDN, no inline script.
HTML_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'none'"
)


REQUEST_ID_KEY = "gantry.request_id"
# What every response carries; the HTTP server's own refusals too (``server.serving``).
SECURITY_HEADERS: tuple[tuple[str, str], ...] = tuple(_SECURITY_HEADERS.items())
_HEADER_DEFAULTS = SECURITY_HEADERS
_DEFAULT_NAMES = frozenset(name.lower() for name in _SECURITY_HEADERS)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def new_request_id() -> str:
    """A fresh request id: ``req_`` and 32 hex digits (128 random bits)."""
    return "req_" + os.urandom(16).hex()


def request_id_for(environ: dict[str, Any]) -> str:
    """The id of the request in ``environ``: its ``X-Request-Id`` if usable, else a new one."""
    request_id: str | None = environ.get(REQUEST_ID_KEY)
    if request_id is None:
        incoming = environ.get("HTTP_X_REQUEST_ID", "")
        request_id = incoming if incoming and _REQUEST_ID.fullmatch(incoming) else new_request_id()
        environ[REQUEST_ID_KEY] = request_id
    return request_id


def current_request_id() -> str:
    """The id of the request being served ("" outside a request or before one was assigned)."""
    try:
        environ = request.environ
    except RuntimeError:  # no request context
        return ""
    request_id: str = environ.get(REQUEST_ID_KEY, "")
    return request_id


class _Globals(_AppCtxGlobals):
    """``flask.g`` with ``request_id``, kept in the WSGI environ."""

    @property
    def request_id(self) -> str:
        return current_request_id()

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "request_id":  # the environ holds it; the response header follows
            request.environ[REQUEST_ID_KEY] = value
        else:
            super().__setattr__(name, value)


class RequestIdMiddleware:
    """Assigns the request id and adds it and the security headers to every response."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if REQUEST_ID_KEY not in environ:
            incoming = environ.get("HTTP_X_REQUEST_ID")  # ``request_id_for``, inlined
            environ[REQUEST_ID_KEY] = (
                incoming if incoming and _REQUEST_ID.fullmatch(incoming) else new_request_id()
            )

        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            request_id = environ[REQUEST_ID_KEY]  # as it is now: ``g.request_id`` may set it
            names = [name.lower() for name, _ in headers]
            if _RESERVED.isdisjoint(names):  # the common case: nothing of ours is set yet
                out = [*headers, ("X-Request-Id", request_id), *_HEADER_DEFAULTS]
                if "content-type" in names and _is_html(headers[names.index("content-type")][1]):
                    out.append(("Content-Security-Policy", HTML_CSP))
                return start_response(status, out, exc_info)
            return start_response(status, _merge(headers, names, request_id), exc_info)

        return self.app(environ, start)


# Header names the middleware sets or defaults; the fast path applies when none is present.
_RESERVED = frozenset({"x-request-id", "content-security-policy", *_DEFAULT_NAMES})


def _merge(
    headers: list[tuple[str, str]], names: list[str], request_id: str
) -> list[tuple[str, str]]:
    """The slow path: the view set some of these headers itself."""
    present = set(names)
    out = [(k, v) for k, v in headers if k.lower() != "x-request-id"]  # ours wins
    out.append(("X-Request-Id", request_id))
    out.extend((k, v) for k, v in _HEADER_DEFAULTS if k.lower() not in present)  # theirs win
    if (
        "content-security-policy" not in present
        and "content-type" in present
        and _is_html(headers[names.index("content-type")][1])
    ):
        out.append(("Content-Security-Policy", HTML_CSP))
    return out


@lru_cache(maxsize=64)  # responses carry a handful of distinct Content-Type values
def _is_html(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "text/html"


def install_request_hooks(app: Flask) -> None:
    """Give every request an id and every response the id and the security headers."""
    app.app_ctx_globals_class = _Globals
    app.wsgi_app = RequestIdMiddleware(app.wsgi_app)  # type: ignore[method-assign]
