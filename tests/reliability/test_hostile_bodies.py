"""Hostile bytes in request bodies and parameters: a 4xx problem, never a 5xx, nothing written.

Hypothesis sends raw bodies to every operation with a JSON body in the operation table (random
bytes, the operation's example with hostile strings, nested too deep, with a member name given
twice, with stray bytes, under odd ``Content-Type`` values), in-process on SQLite and, with
``GANTRY_TEST_DATABASE_URL``, on PostgreSQL. The named cases are the ones that used to answer
500: an encoded surrogate in ``POST /auth/login``, 256 levels of nesting inside a field, 1,000 at
the top, and ``GET /admin/users?q=%00`` on PostgreSQL; and the ones that used to be accepted: a
duplicate ``role``, a Latin-1 charset, a NUL in a string.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from generated.operations import OPERATIONS
from server.runtime.json_body import MAX_DEPTH
from server.storage.models import Membership, Workspace
from tests.conftest import Account, Api, Gantry, check_status, native_error_operations

EXAMPLES = int(os.environ.get("GANTRY_HOSTILE_EXAMPLES", "30"))
JSON_OPERATIONS = [op for op in OPERATIONS if op.request_body is not None]
NATIVE_ERRORS = native_error_operations()
FAKE_IDS = {"user_id": "usr_" + "0" * 24, "token_id": "tok_" + "0" * 24}

HOSTILE_TEXT = st.one_of(
    st.sampled_from(
        ["\x00", "a\x00b", "\ud800", "x\udfff", "\ufeff", "\u202e", "\U0001d54f" * 50, ""]
    ),
    st.text(max_size=40),
    st.text(st.characters(codec="utf-8", exclude_categories=()), max_size=20),
)
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(HOSTILE_TEXT, inner, max_size=4),
    max_leaves=12,
)
CONTENT_TYPES = st.sampled_from(
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        "application/json; charset",
        "application/merge-patch+json",
        "text/plain",
        "",
    ]
)


def _example(op: Any) -> dict[str, Any]:
    examples = op.request_body.content[0].examples
    value = next(iter(examples.values())) if examples else {}
    return dict(value) if isinstance(value, dict) else {}


def _dumps(value: Any) -> bytes:
    # ensure_ascii: a lone surrogate goes out escaped ("\\ud800"), as a client may send it
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def hostile_bodies(draw: st.DrawFn, example: dict[str, Any]) -> bytes:
    kind = draw(st.sampled_from(["bytes", "example", "value", "deep", "duplicate", "mangled"]))
    if kind == "bytes":
        return draw(st.binary(max_size=120))
    if kind == "value":
        return _dumps(draw(JSON_VALUES))
    body = dict(example)
    if body:
        field = draw(st.sampled_from(sorted(body)))
        body[field] = draw(JSON_VALUES)
    if kind == "deep":
        depth = draw(st.integers(min_value=MAX_DEPTH - 2, max_value=1500))
        return b'{"x":' + b"[" * depth + b"]" * depth + b"}"
    raw = _dumps(body)
    if kind == "duplicate" and body:
        field = draw(st.sampled_from(sorted(body)))
        return raw[:-1] + b", " + _dumps({field: body[field]})[1:]
    if kind == "mangled" and raw:
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        return raw[:at] + draw(st.binary(min_size=1, max_size=4)) + raw[at:]
    return raw


def _callers(gantry: Gantry) -> tuple[Api, Api, Api, str]:
    """The anonymous caller, a signed-in user (for session-only operations), the superadmin and
    a workspace the superadmin owns."""
    account: Account = gantry.user("hostile")
    workspace = gantry.workspace(gantry.admin)
    return gantry.anon, account.session, gantry.admin, workspace["id"]


def _answers_no_server_error(response: Any, envelope: str = "application/problem+json") -> None:
    assert response.status_code < 500, (response.status_code, response.get_data()[:500])
    if response.status_code >= 400:
        assert response.mimetype == envelope, response.mimetype


def test_no_raw_body_is_a_server_error(gantry: Gantry) -> None:
    anon, session, admin, workspace_id = _callers(gantry)
    for op in JSON_OPERATIONS:
        caller = {"public": anon, "session": session}.get(op.min_role or "", admin)
        path = op.path.replace("{workspace_id}", workspace_id)
        for name, value in FAKE_IDS.items():
            path = path.replace("{" + name + "}", value)
        # The gateway's data plane answers in its clients' own JSON envelopes.
        envelope = "application/json" if op.operation_id in NATIVE_ERRORS else None
        _fuzz(caller, op.method, path, _example(op), envelope or "application/problem+json")


def _fuzz(caller: Api, method: str, path: str, example: dict[str, Any], envelope: str) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(body=hostile_bodies(example), content_type=CONTENT_TYPES)
    def sends(body: bytes, content_type: str) -> None:
        response = caller.request(
            method, path, data=body, content_type=content_type, validate=False
        )
        _answers_no_server_error(response, envelope)

    sends()


# ── the named cases ─────────────────────────────────────────────────────────────────────────


def _refused(response: Any, status: int, message: str) -> dict[str, Any]:
    body: dict[str, Any] = check_status(response, status)
    assert any(message in error["message"] for error in body.get("errors", [])) or (
        message in body["detail"]
    ), body
    return body


def test_encoded_surrogate_in_login(gantry: Gantry) -> None:
    body = b'{"email": "a\xed\xa0\x80@example.com", "password": "correct-horse-battery-staple"}'
    _refused(
        gantry.anon.post("/auth/login", data=body, content_type="application/json"), 400, "UTF-8"
    )


def test_escaped_lone_surrogate_in_login(gantry: Gantry) -> None:
    body = b'{"email": "a\\ud800@example.com", "password": "correct-horse-battery-staple"}'
    response = gantry.anon.post("/auth/login", data=body, content_type="application/json")
    _refused(response, 400, "unpaired surrogate")


@pytest.mark.parametrize(
    "body",
    [
        b'{"email": ' + b"[" * 256 + b"]" * 256 + b', "password": "x"}',
        b"[" * 1000 + b"]" * 1000,
        b'{"a":' * 1000 + b"1" + b"}" * 1000,
    ],
    ids=["256 levels inside a field", "1,000 arrays at the top", "1,000 objects at the top"],
)
def test_nesting_beyond_the_limit(gantry: Gantry, body: bytes) -> None:
    response = gantry.anon.post("/auth/login", data=body, content_type="application/json")
    _refused(response, 400, f"deeper than {MAX_DEPTH}")


def test_nesting_at_the_limit_is_decoded(gantry: Gantry) -> None:
    """64 levels are JSON the server reads (the schema then refuses the shape)."""
    body = b'{"email": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    response = gantry.anon.post("/auth/login", data=body, content_type="application/json")
    assert "deeper than" not in response.get_data(as_text=True)
    check_status(response, 400)


def test_duplicate_member_names_are_refused_and_nothing_is_written(gantry: Gantry) -> None:
    owner = gantry.user("owner")
    workspace = gantry.workspace(owner)
    grace = gantry.user("grace")
    before = gantry.count(Membership)
    raw = b'{"email": "%s", "role": "viewer", "role": "owner"}' % grace.email.encode()
    response = owner.session.post(
        f"/workspaces/{workspace['id']}/members", data=raw, content_type="application/json"
    )
    _refused(response, 400, "'role' is given more than once")
    assert gantry.count(Membership) == before
    nested = b'{"name": "n", "settings": {"max_members": 5, "max_members": 6}}'
    response = owner.session.patch(
        f"/workspaces/{workspace['id']}", data=nested, content_type="application/json"
    )
    _refused(response, 400, "'max_members' is given more than once")


def test_a_charset_other_than_utf8_is_refused(gantry: Gantry) -> None:
    raw = '{"email": "ada@example.com", "password": "corr\u00e9ct-horse-battery-staple"}'
    response = gantry.anon.post(
        "/auth/login",
        data=raw.encode("latin-1"),
        content_type="application/json; charset=latin-1",
    )
    check_status(response, 415, "unsupported_media_type")
    response = gantry.anon.post(
        "/auth/login",
        data=raw.encode("utf-8"),
        content_type='application/json; charset="UTF-8"',
    )
    check_status(response, 401, "invalid_credentials")


def test_nul_in_a_body_string_is_refused_and_nothing_is_written(gantry: Gantry) -> None:
    before = gantry.count(Workspace)
    response = gantry.admin.post(
        "/workspaces",
        data=b'{"name": "a\\u0000b", "slug": "nul-name"}',
        content_type="application/json",
    )
    _refused(response, 400, "NUL")
    assert gantry.count(Workspace) == before
    response = gantry.admin.post(
        "/workspaces",
        data=b'{"name": "a\\\\u0000b", "slug": "escaped-backslash"}',  # the text \u0000: fine
        content_type="application/json",
    )
    check_status(response, 201)


@pytest.mark.parametrize(
    "query", ["q=%00", "q=a%00b", "cursor=%00", "limit=%00", "%00=1", "q=x&q=%00"]
)
def test_nul_in_a_query_parameter_is_refused(gantry: Gantry, query: str) -> None:
    response = gantry.admin.get(f"/api/v1/admin/users?{query}", validate=False)
    body = check_status(response, 400)
    assert body["code"] in ("validation_failed", "unknown_parameter")


def test_nul_in_a_path_parameter_is_refused(gantry: Gantry) -> None:
    """Header and cookie parameters: ``tests/runtime/test_params.py``."""
    response = gantry.admin.get("/workspaces/ws_%00", validate=False)
    check_status(response, 400)
