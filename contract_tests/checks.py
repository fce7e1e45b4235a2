"""Gantry's conventions as schemathesis checks, registered once and run on every case.

Each check reads the convention from the response and the spec, never from a hand-kept list
of operations, so a new operation is covered without editing the suite.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

PROBLEM_JSON = "application/problem+json"


def _header(response: Any, name: str) -> str | None:
    values = response.headers.get(name.lower()) or []
    return values[0] if values else None


def _documented_codes(case: Any) -> set[str]:
    raw = case.operation.schema.raw_schema
    problem = raw.get("components", {}).get("schemas", {}).get("Problem", {})
    code = problem.get("properties", {}).get("code", {})
    return set(code.get("enum", []))


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx/5xx is problem+json whose status, code and request_id agree with the response."""
    status = response.status_code
    if status < 400:
        return None
    ctype = (_header(response, "content-type") or "").split(";")[0].strip()
    assert ctype == PROBLEM_JSON, f"{status} answered with Content-Type {ctype!r}, not {PROBLEM_JSON}"
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{status} problem body is not JSON") from None
    assert isinstance(body, dict), f"{status} problem body is not an object"
    assert body.get("status") == status, f"problem status {body.get('status')!r} != HTTP {status}"
    codes = _documented_codes(case)
    assert not codes or body.get("code") in codes, f"problem code {body.get('code')!r} is not documented"
    request_id = _header(response, "x-request-id")
    assert request_id and body.get("request_id") == request_id, (
        f"problem request_id {body.get('request_id')!r} != X-Request-Id {request_id!r}"
    )
    if status == 401:
        assert _header(response, "www-authenticate"), "401 without WWW-Authenticate"
    if status == 405:
        assert _header(response, "allow"), "405 without Allow"
    if status == 429:
        assert _header(response, "retry-after"), "429 without Retry-After"
    return None
