"""The contract gate's hand-over to Flask: one request object, one match, one transaction.

Built over the bench contract (``bench/contract``) with a guard and handlers the tests control,
and a stand-in session factory that records what happens to each transaction.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import flask
import pytest
from flask import Flask

from server.runtime.errors import Unauthenticated
from server.runtime.gate import GatedFlask, install_contract_gate
from server.runtime.middleware import install_request_hooks
from server.runtime.problem import install_error_handlers

ITEMS = "/bench/v1/items"
GOOD_BODY = {"name": "widget", "price": 9.5}


class FakeSession:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.info: dict[str, object] = {}  # where authentication leaves its usage stamps

    def commit(self) -> None:
        self.log.append("commit")

    def rollback(self) -> None:
        self.log.append("rollback")

    def close(self) -> None:
        self.log.append("close")


class Guard:
    """Opens the transaction (as a real guard reading credentials does); 401 without a token;
    raises ``RuntimeError`` (not the client's fault) for the token ``boom``."""

    def authenticate(self, operation: Any, http: Any, session: Callable[[], Any]) -> Any:
        session()
        authorization = http.environ.get("HTTP_AUTHORIZATION")
        if authorization == "Bearer boom":
            raise RuntimeError("the credential store is down")
        if authorization != "Bearer ok":
            raise Unauthenticated()
        return None

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> None:
        return None


def _app(handler: Callable[[Any], Any], **config: Any) -> tuple[Flask, list[str]]:
    from bench.contract import generated
    from bench.contract.generated import models
    from bench.contract.generated.routes import register_routes
    from server.runtime.dispatch import Dispatcher
    from server.runtime.pagination import CursorCodec
    from server.runtime.schemas import SchemaBundle

    log: list[str] = []
    app = GatedFlask("gated")
    app.config.update(PROVIDE_AUTOMATIC_OPTIONS=False, **config)
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(generated),
        models=models,
        guard=Guard(),
        cursors=CursorCodec(b"x"),
        session_factory=lambda: FakeSession(log),  # type: ignore[arg-type,return-value]
        handlers=lambda operation: handler,
    )
    register_routes(app, dispatcher.bind)
    install_contract_gate(app, dispatcher.admit)
    install_request_hooks(app)
    return app, log


def _created(request: Any) -> Any:
    from server.runtime.context import Reply

    return Reply(body={"name": request.body.name}, status=201)


def test_flask_takes_over_the_gates_request_object_and_match() -> None:
    seen: dict[str, Any] = {}

    def handler(request: Any) -> Any:
        seen["body"] = flask.request.get_data()  # read by the gate, still there
        seen["endpoint"] = flask.request.url_rule.endpoint
        seen["view_args"] = flask.request.view_args
        seen["self"] = flask.url_for("createItem", _external=True)
        return _created(request)

    app, log = _app(handler)
    body = json.dumps(GOOD_BODY).encode()
    response = app.test_client().post(
        ITEMS,
        data=body,
        content_type="application/json",
        headers={"Authorization": "Bearer ok", "Host": "api.example.com"},
    )
    assert response.status_code == 201, response.json
    assert seen == {
        "body": body,
        "endpoint": "createItem",
        "view_args": {},
        "self": "http://api.example.com/bench/v1/items",
    }
    assert log == ["commit", "close"]  # one transaction, from the gate's admission to the view


def test_a_refusal_rolls_back_what_the_admission_opened() -> None:
    app, log = _app(_created)
    response = app.test_client().post(
        ITEMS, json={"price": -1}, headers={"Authorization": "Bearer ok"}
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert log == ["rollback", "close"]


def test_an_admission_is_closed_when_flask_never_reaches_the_view() -> None:
    app, log = _app(_created)

    @app.before_request
    def maintenance() -> Any:
        return flask.Response("down for maintenance", status=503)

    response = app.test_client().post(ITEMS, json=GOOD_BODY, headers={"Authorization": "Bearer ok"})
    assert response.status_code == 503
    assert log == ["rollback", "close"]


def test_an_error_that_is_not_the_clients_is_left_to_flask(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, log = _app(_created)
    started: list[str] = []
    flask.request_started.connect(lambda sender, **_: started.append("started"), app, weak=False)
    response = app.test_client().post(
        ITEMS, json=GOOD_BODY, headers={"Authorization": "Bearer boom"}
    )
    assert response.status_code == 500
    assert response.json["code"] == "internal_error"
    assert "credential store" not in response.get_data(as_text=True)
    assert started == ["started"]  # Flask's request cycle, error handling and signals saw it
    assert log == ["rollback", "close", "rollback", "close"]  # the gate's try, then the view's


def test_the_body_limit_holds_at_the_gate() -> None:
    app, _ = _app(_created, MAX_CONTENT_LENGTH=64)
    response = app.test_client().post(
        ITEMS, json={**GOOD_BODY, "description": "x" * 100}, headers={"Authorization": "Bearer ok"}
    )
    assert response.status_code == 413
    assert response.json["code"] == "payload_too_large"


@pytest.mark.parametrize("host, status", [("api.example.com", 201), ("evil.example.com", 400)])
@pytest.mark.parametrize("configured", ["before the gate", "after the gate"])
def test_trusted_hosts_are_checked_before_anything_is_admitted(
    host: str, status: int, configured: str
) -> None:
    if configured == "before the gate":
        app, log = _app(_created, TRUSTED_HOSTS=["api.example.com"])
    else:  # as an operator's WSGI module may do with the app ``create_app`` returns
        app, log = _app(_created)
        app.config["TRUSTED_HOSTS"] = ["api.example.com"]
    response = app.test_client().post(
        ITEMS, json=GOOD_BODY, headers={"Authorization": "Bearer ok", "Host": host}
    )
    assert response.status_code == status
    assert response.mimetype == (
        "application/json" if status == 201 else "application/problem+json"
    )
    assert log == (["commit", "close"] if status == 201 else [])


def test_a_redirect_is_flasks_and_points_at_the_requests_host() -> None:
    app, log = _app(_created)
    app.add_url_rule("/bench/v1/things/", endpoint="things", view_func=lambda: "things")
    client = app.test_client()
    response = client.get("/bench/v1/things", headers={"Host": "api.example.com"})
    assert response.status_code == 308
    assert response.headers["Location"] == "http://api.example.com/bench/v1/things/"
    assert client.get("/bench/v1/things/").get_data() == b"things"  # not an operation: Flask's
    assert log == []


def test_the_gate_needs_a_gated_flask() -> None:
    with pytest.raises(TypeError, match="GatedFlask"):
        install_contract_gate(Flask("plain"), lambda endpoint, http, view_args: None)  # type: ignore[arg-type]
