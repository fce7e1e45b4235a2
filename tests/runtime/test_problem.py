"""Problem documents: the encoded text is the problem body; errors raised in a view are answered
by the dispatcher itself, logged as the Flask error handler logs them."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask

from server.runtime.errors import (
    ApiError,
    BadRequest,
    ClientError,
    FieldError,
    InternalError,
    NotImplementedYet,
    RateLimited,
    Unauthenticated,
)
from server.runtime.problem import (
    encode_problem,
    install_error_handlers,
    problem_body,
    problem_response,
)


class _WithExtra(ClientError):
    code = "with_extra"

    def extra(self) -> dict[str, Any]:
        return {"retry": [1, 2], "note": "é"}


def _unusual_status() -> ClientError:
    error = ClientError("I'm a teapot.")
    error.status = 418  # type: ignore[misc]  # as problem.py does for werkzeug's odd codes
    error.title = "I'm a Teapot"  # type: ignore[misc]
    return error


ERRORS = [
    BadRequest("The body is invalid."),
    BadRequest(
        "The body is invalid.",
        errors=[
            FieldError("body", '"name" is a required property'),
            FieldError("body.tags[0]", '"" is shorter than 1 character'),
            FieldError("body.naïve", "ünïcode, \\ backslash, \u2028 separator, \x00 nul"),
        ],
    ),
    BadRequest("Bad.", code="unknown_parameter", errors=[FieldError("query.x", "unknown")]),
    Unauthenticated(),
    RateLimited(3),
    NotImplementedYet("Not yet."),
    InternalError(InternalError.detail_public),
    _unusual_status(),
    _WithExtra("Extra members.", errors=[FieldError("a", "b")]),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("request_id", ["req_0123", "", 'odd "id"'])
def test_the_encoding_is_the_problem_body(error: ApiError, request_id: str) -> None:
    encoded = encode_problem(error, request_id)
    assert json.loads(encoded) == problem_body(error, request_id)
    assert json.loads(encoded)["status"] == error.status


def test_response_carries_status_type_and_headers() -> None:
    response = problem_response(RateLimited(7), "req_1")
    assert response.status_code == 429
    assert response.content_type == "application/problem+json"
    assert response.headers["Retry-After"] == "7"
    assert response.get_json()["request_id"] == "req_1"


def _app() -> Flask:
    """The runtime over the bench contract, with a handler that raises what it is told."""
    from bench.contract import generated
    from bench.contract.generated import models
    from bench.contract.generated.routes import register_routes
    from server.runtime.dispatch import Dispatcher
    from server.runtime.pagination import CursorCodec
    from server.runtime.schemas import SchemaBundle

    class LetIn:
        def authenticate(self, operation: Any, http: Any, session: Any) -> None:
            return None

        def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> None:
            return None

    def handler(request: Any) -> Any:
        raise {"itm_00000001": NotImplementedYet("Later."), "itm_00000002": BadRequest("No.")}[
            request.path["item_id"]
        ]

    app = Flask("problems")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(generated),
        models=models,
        guard=LetIn(),
        cursors=CursorCodec(b"x"),
        handlers=lambda operation: handler,
    )
    register_routes(app, dispatcher.bind)
    return app


def test_dispatcher_answers_and_logs_errors_as_the_flask_handler_does(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _app().test_client()
    with caplog.at_level(logging.INFO, logger="gantry.errors"):
        server_error = client.get("/bench/v1/items/itm_00000001")
        client_error = client.get("/bench/v1/items/itm_00000002")
        invalid = client.get("/bench/v1/items/nope")
    assert server_error.status_code == 501
    assert server_error.get_json()["code"] == "not_implemented"
    assert client_error.status_code == 400
    assert invalid.status_code == 400
    assert invalid.get_json()["errors"][0]["field"] == "path.item_id"
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels == [
        (logging.ERROR, "GET /bench/v1/items/itm_00000001 -> 501: Later."),
        (logging.INFO, "GET /bench/v1/items/itm_00000002 -> 400 validation_failed"),
        (logging.INFO, "GET /bench/v1/items/nope -> 400 validation_failed"),
    ]
