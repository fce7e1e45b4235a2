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
    assert ctype == PROBLEM_JSON, (
        f"{status} answered with Content-Type {ctype!r}, not {PROBLEM_JSON}"
    )
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{status} problem body is not JSON") from None
    assert isinstance(body, dict), f"{status} problem body is not an object"
    assert body.get("status") == status, f"problem status {body.get('status')!r} != HTTP {status}"
    codes = _documented_codes(case)
    assert not codes or body.get("code") in codes, (
        f"problem code {body.get('code')!r} is not documented"
    )
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


@schemathesis.check
def positive_data_on_lists(ctx: Any, response: Any, case: Any) -> None:
    """On list operations a schema-valid request may only be refused (400) for its cursor.

    ``schemathesis.toml`` lets lists answer 400 to generated data because a fabricated cursor
    cannot be told from a real one by the schema; this check keeps every other 400 a failure.
    """
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 400:
        return None
    if not str(case.operation.definition.raw.get("operationId", "")).startswith("list"):
        return None
    if response.request.method != case.operation.method.upper():
        return None
    body = json.loads(response.content)
    assert body.get("code") == "invalid_cursor" and case.query and case.query.get("cursor"), (
        f"schema-valid request to a list refused with 400 {body.get('code')!r}: {body.get('errors')}"
    )
    return None
