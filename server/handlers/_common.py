"""What several handler modules share: the API's base path and the session cookie (HTTP
concerns only; rules live in ``server.domain``)."""

from __future__ import annotations

from server.runtime.auth import SESSION_COOKIE
from server.runtime.context import Cookie, Request
from server.vocabulary import SESSION_ABSOLUTE_TTL

API_BASE = "/api/v1"


def session_cookie(req: Request, value: str) -> Cookie:
    """The ``session`` cookie carrying ``value`` (HttpOnly, SameSite=Lax, for the session's
    absolute lifetime)."""
    return Cookie(
        name=SESSION_COOKIE,
        value=value,
        max_age=int(SESSION_ABSOLUTE_TTL.total_seconds()),
        http_only=True,
        same_site="Lax",
        secure=bool(req.state.config.secure_cookies),
        path="/",
    )


def cleared_session_cookie(req: Request) -> Cookie:
    """A ``Set-Cookie`` that removes the session cookie."""
    return Cookie(
        name=SESSION_COOKIE,
        value="",
        max_age=0,
        http_only=True,
        same_site="Lax",
        secure=bool(req.state.config.secure_cookies),
        path="/",
    )
