"""Sending one request as schemathesis sends it, and judging its answer by every check.

A ``world.Request`` becomes a schemathesis ``Case`` of the served document; ``validate_case``
runs every registered check on the answer (``contract_tests.checks`` registers Gantry's own when
it is imported, which ``runner`` does).
"""

from __future__ import annotations

import http.cookiejar
from collections.abc import Mapping
from typing import Any

import requests

from contract_tests import spec

# Checks that only make sense for generated cases or that re-send the request: skipped for
# the follow-up pages of a pagination walk (the first page already ran them).
_LIGHT_EXCLUDED = ("ignored_auth",)


def cookie_less_session() -> requests.Session:
    """A requests session that never stores cookies: each request carries exactly its own."""
    session = requests.Session()
    session.cookies.set_policy(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return session


_HTTP = cookie_less_session()


def operation_of(schema: Any, op: Any) -> Any:
    found = schema.find_operation_by_label(spec.label(op))
    if found is None:
        raise LookupError(f"{spec.label(op)} is routed but not in the served document")
    return found


# ── single requests ───────────────────────────────────────────────────────────────────────────


def make_case(schema: Any, request: Any, *, csrf: bool = True) -> Any:
    """A schemathesis case for a ``world.Request``."""
    operation = operation_of(schema, request.op)
    headers = {**request.headers(), **request.caller.headers}
    if not csrf:
        headers.pop("X-Requested-With", None)
    kwargs: dict[str, Any] = {
        "path_parameters": dict(request.path),
        "query": dict(request.query),
        "headers": headers,
        "cookies": dict(request.caller.cookies),
    }
    if request.op.request_body is not None:
        kwargs["body"] = request.body
        kwargs["media_type"] = request.media_type()
    return operation.Case(**kwargs)


def call_case(case: Any, headers: Mapping[str, str] | None = None) -> Any:
    """Send ``case`` (plus ``headers``, e.g. the credentials of the request it derives from)."""
    extra = dict(headers or {})
    cookie = extra.pop("cookie", None) or extra.pop("Cookie", None)
    cookies = None
    if cookie:
        cookies = dict(part.strip().split("=", 1) for part in cookie.split(";") if "=" in part)
    return case.call(session=_HTTP, headers=extra or None, cookies=cookies, timeout=60)


def validate_case(case: Any, response: Any, *, light: bool = True) -> None:
    """Run every registered check on ``response``; raise ``FailureGroup`` on failures."""
    excluded = [c for c in _all_checks() if c.__name__ in _LIGHT_EXCLUDED] if light else []
    case.validate_response(response, excluded_checks=excluded or None)


def _all_checks() -> list[Any]:
    from schemathesis.checks import CHECKS

    return list(CHECKS.get_all())


def status_and_code(response: Any) -> tuple[int, str | None]:
    """The status and, on an error, the problem's `code` (None when the body has none). A
    native envelope (``x-gantry-error-format``) carries it as ``error.code``, OpenAI's does;
    Anthropic's has none."""
    code = None
    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            code = body.get("code")
            native = body.get("error")
            if code is None and isinstance(native, dict):
                code = native.get("code")
    return response.status_code, code if isinstance(code, str) else None
