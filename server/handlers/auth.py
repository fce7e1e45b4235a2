"""auth: registration, login and logout with the session cookie, and the current identity."""

from __future__ import annotations

from server.domain import auth
from server.handlers._common import API_BASE, cleared_session_cookie, session_cookie
from server.runtime.context import Reply, Request


def _limit_per_ip(req: Request) -> None:
    """The auth endpoints' per-IP rate limit (429 with Retry-After)."""
    req.state.login_limiter.hit(req.client_ip or "unknown")


def register(req: Request) -> Reply:
    """Create a user, sign it in; the first user of an instance without a superadmin becomes one."""
    registration_open = req.state.config.registration_enabled
    if registration_open:  # a refused registration is no attempt to count
        _limit_per_ip(req)
    signed_in = auth.register(req.work, req.body, registration_open=registration_open)
    return Reply(
        signed_in.user,
        status=201,
        headers={"Location": f"{API_BASE}/auth/me"},
        cookies=[session_cookie(req, signed_in.cookie)],
    )


def login(req: Request) -> Reply:
    """Check email and password and start a session; every failure is ``invalid_credentials``."""
    _limit_per_ip(req)
    signed_in = auth.sign_in(req.work, req.body)
    return Reply(signed_in.user, cookies=[session_cookie(req, signed_in.cookie)])


def logout(req: Request) -> Reply:
    """End this session and clear the cookie."""
    auth.sign_out(req.work)
    return Reply(None, status=204, cookies=[cleared_session_cookie(req)])


def get_me(req: Request) -> auth.Me:
    """The user (null for an API key), the memberships and the credential of this request."""
    return auth.whoami(req.work)


def update_me(req: Request) -> object:
    """Change the display name and/or the password (which needs the current one)."""
    return auth.update_me(req.work, req.body)
