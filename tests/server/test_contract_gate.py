"""The contract gate in the real app: it answers exactly what the views would, without Flask.

Each request is sent twice through one app and one client, once through the whole WSGI stack
and once with the gate taken out (the request-id middleware straight over Flask, where the views
admit requests themselves); status, headers and problem document must be the same. Refusals must
not start Flask's request cycle; everything else must.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import flask
import pytest
from flask import Flask
from werkzeug.test import TestResponse

from server.runtime.gate import ContractGate
from server.runtime.middleware import RequestIdMiddleware

API = "/api/v1"


@contextmanager
def without_gate(app: Flask) -> Iterator[None]:
    stack = app.wsgi_app
    assert isinstance(stack, RequestIdMiddleware) and isinstance(stack.app, ContractGate)
    app.wsgi_app = RequestIdMiddleware(stack.app.wsgi_app)  # type: ignore[method-assign]
    try:
        yield
    finally:
        app.wsgi_app = stack  # type: ignore[method-assign]


@contextmanager
def flask_cycles(app: Flask) -> Iterator[list[str]]:
    """The paths of the requests Flask's request cycle started for, while in the block."""
    started: list[str] = []

    def record(sender: Flask, **extra: Any) -> None:
        started.append(flask.request.path)

    flask.request_started.connect(record, app)
    try:
        yield started
    finally:
        flask.request_started.disconnect(record, app)


def _answer(response: TestResponse) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in response.headers.items() if k != "X-Request-Id"}
    body: Any = response.get_data()
    if response.mimetype in ("application/json", "application/problem+json"):
        body = json.loads(body)
        if isinstance(body, dict):
            assert body.pop("request_id", None) in (None, response.headers["X-Request-Id"])
    return response.status_code, headers, body


@pytest.fixture
def people(gantry: Any) -> dict[str, str]:
    """Bearer tokens: a workspace owner and a plain user, and the owner's workspace id."""
    owner = gantry.user("owner")
    workspace = gantry.workspace(owner)
    return {
        "owner": gantry.pat(owner),
        "user": gantry.pat(gantry.user("plain")),
        "workspace": workspace["id"],
    }


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


REFUSALS: dict[str, tuple[int, str]] = {
    "no credential": (401, "unauthenticated"),
    "unknown token": (401, "unauthenticated"),
    "parameter out of range": (400, "validation_failed"),
    "unknown parameter": (400, "unknown_parameter"),
    "role too low": (403, "forbidden"),
    "malformed JSON": (400, "validation_failed"),
    "JSON of the wrong type": (400, "validation_failed"),
    "body breaks the schema": (400, "validation_failed"),
    "unsupported media type": (415, "unsupported_media_type"),
    "body too large": (413, "payload_too_large"),
}


def _send(client: Any, case: str, people: dict[str, str]) -> TestResponse:
    owner = _bearer(people["owner"])
    workspaces = f"{API}/workspaces"
    sends: dict[str, Any] = {
        "no credential": lambda: client.get(f"{API}/auth/me"),
        "unknown token": lambda: client.get(f"{API}/auth/me", headers=_bearer("pat_" + "x" * 40)),
        "parameter out of range": lambda: client.get(
            workspaces, query_string="limit=0", headers=owner
        ),
        "unknown parameter": lambda: client.get(
            workspaces, query_string="colour=red", headers=owner
        ),
        "role too low": lambda: client.get(f"{API}/admin/users", headers=_bearer(people["user"])),
        "malformed JSON": lambda: client.post(
            workspaces, data=b'{"name":', content_type="application/json", headers=owner
        ),
        "JSON of the wrong type": lambda: client.post(workspaces, json=["x"], headers=owner),
        "body breaks the schema": lambda: client.post(
            workspaces, json={"name": "", "slug": "Not A Slug", "colour": 1}, headers=owner
        ),
        "unsupported media type": lambda: client.post(
            workspaces, data="name=x", content_type="text/plain", headers=owner
        ),
        "body too large": lambda: client.post(
            workspaces, json={"name": "x" * 2_000_000, "slug": "big"}, headers=owner
        ),
        "valid list": lambda: client.get(workspaces, headers=owner),
        "valid get": lambda: client.get(f"{workspaces}/{people['workspace']}", headers=owner),
        "unknown route": lambda: client.get(f"{API}/no-such-thing", headers=owner),
        "method not allowed": lambda: client.delete(f"{API}/auth/me", headers=owner),
        "trailing slash": lambda: client.get(f"{workspaces}/", headers=owner),
        "docs asset": lambda: client.get("/docs/assets/no-such-asset.js"),
    }
    response: TestResponse = sends[case]()
    return response


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_is_the_views_answer_without_flask(
    app: Flask, people: dict[str, str], case: str
) -> None:
    client = app.test_client()
    with flask_cycles(app) as started:
        gated = _send(client, case, people)
    assert started == [], "a refused request must not start Flask's request cycle"
    status, code = REFUSALS[case]
    assert (gated.status_code, gated.json["code"] if gated.json else None) == (status, code)
    assert gated.headers["X-Request-Id"].startswith("req_")
    assert gated.headers["X-Content-Type-Options"] == "nosniff"
    with without_gate(app):
        ungated = _send(client, case, people)
    assert _answer(gated) == _answer(ungated)


@pytest.mark.parametrize(
    "case",
    [
        "valid list",
        "valid get",
        "unknown route",
        "method not allowed",
        "trailing slash",
        "docs asset",
    ],
)
def test_everything_else_goes_through_flask_unchanged(
    app: Flask, people: dict[str, str], case: str
) -> None:
    client = app.test_client()
    with flask_cycles(app) as started:
        gated = _send(client, case, people)
    assert len(started) == 1
    with without_gate(app):
        ungated = _send(client, case, people)
    assert _answer(gated) == _answer(ungated)


def test_a_request_id_sent_by_the_client_is_kept_on_a_refusal(app: Flask) -> None:
    response = app.test_client().get(f"{API}/auth/me", headers={"X-Request-Id": "client-42"})
    assert response.status_code == 401
    assert response.headers["X-Request-Id"] == "client-42"
    assert response.json["request_id"] == "client-42"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="gantry"'


def test_the_gate_must_sit_inside_the_request_hooks(app: Flask) -> None:
    from server.runtime.gate import install_contract_gate

    with pytest.raises(RuntimeError, match="before the request hooks"):
        install_contract_gate(app, lambda endpoint, http, view_args: None)  # type: ignore[arg-type]
