"""The benchmark contract served four ways, all over ``bench.contract.handlers``.

* ``gantry``: the package generated from ``openapi.yaml`` (``bench/contract/generated``),
  served through the real runtime as ``create_app`` wires it (the contract gate, ``Dispatcher``,
  compiled validators, pydantic models, problem+json, request ids and security headers), with a
  guard for the bench's bearer token.
* ``floor``: bare Flask, no validation: the same handler work, the same JSON encoding, the same
  bearer check and the same problem+json bodies for the errors the handler work raises.
* ``connexion``: Connexion 3.3 ``FlaskApp`` with its default (request) validation; the bearer
  token is checked by the contract's ``x-bearerInfoFunc`` (the shared ``bearer_info``).
* ``openapi_core``: bare Flask plus openapi-core 0.23 request validation (``unmarshal_request``)
  in every view; its errors become problem+json like Gantry's.

Every factory takes no argument and returns a WSGI app (``connexion``: an ASGI app), so
``gunicorn 'bench.contract.apps:create_floor()'`` and friends serve them as they are.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, request

from bench.contract import handlers
from server.domain.actors import Principal
from server.runtime.errors import ApiError, BadRequest, FieldError, Unauthenticated

SPEC_PATH = Path(__file__).resolve().parent / "openapi.yaml"
BASE = "/bench/v1"
PROBLEM_JSON = "application/problem+json"
VARIANTS = ("gantry", "floor", "connexion", "openapi_core")


def _problem(error: ApiError) -> Response:
    """What the floor and openapi-core variants answer for an ``ApiError`` (Gantry's shape)."""
    body: dict[str, Any] = {
        "type": f"urn:gantry:problem:{error.code}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "code": error.code,
    }
    if error.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    response = Response(handlers.dumps(body), status=error.status, mimetype=PROBLEM_JSON)
    response.headers.update(error.headers)
    return response


def _json(body: Any, status: int = 200) -> Response:
    return Response(handlers.dumps(body), status=status, mimetype="application/json")


# ── gantry ──────────────────────────────────────────────────────────────────────────────────


_PRINCIPAL = Principal(kind="pat", credential_id="bench", label="bench")


class BenchGuard:
    """The bench's auth step for the Gantry dispatcher: the one bearer token, no roles."""

    def authenticate(self, operation: Any, http: Any, session: Any) -> Any:
        handlers.check_bearer(http.headers.get("Authorization"))
        return _PRINCIPAL

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> None:
        return None


def _gantry_list(req: Any) -> Any:
    return handlers.list_items(req.page.limit, req.page.after)


def _gantry_get(req: Any) -> Any:
    return handlers.get_item(req.path["item_id"])


def _gantry_create(req: Any) -> Any:
    from server.runtime.context import Reply

    body = req.body
    tags = [tag.root for tag in body.tags] if body.tags is not None else None
    item = handlers.create_item(body.name, body.price, tags, body.quantity, body.description)
    return Reply(body=item, status=201)


GANTRY_HANDLERS: dict[str, Callable[[Any], Any]] = {
    "listItems": _gantry_list,
    "getItem": _gantry_get,
    "createItem": _gantry_create,
}


def create_gantry() -> Flask:
    """The generated package through the real runtime (``server.runtime``)."""
    from bench.contract import generated
    from bench.contract.generated import models
    from bench.contract.generated.routes import register_routes
    from server.runtime.dispatch import Dispatcher
    from server.runtime.gate import GatedFlask, install_contract_gate
    from server.runtime.middleware import install_request_hooks
    from server.runtime.problem import install_error_handlers
    from server.runtime.schemas import SchemaBundle

    app = GatedFlask("bench_gantry")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(generated),
        models=models,
        guard=BenchGuard(),
        cursors=handlers.CODEC,
        handlers=lambda operation: GANTRY_HANDLERS[operation.operation_id],
    )
    register_routes(app, dispatcher.bind)
    install_contract_gate(app, dispatcher.admit)
    install_request_hooks(app)
    return app


# ── floor ───────────────────────────────────────────────────────────────────────────────────


def create_floor() -> Flask:
    """Bare Flask: no validation, the same handler work."""
    app = Flask("bench_floor")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _problem(exc)

    @app.get(f"{BASE}/items")
    def list_items() -> Response:
        handlers.check_bearer(request.headers.get("Authorization"))
        cursor = request.args.get("cursor")
        after = handlers.decode_cursor(cursor) if cursor else None
        return _json(handlers.list_items(int(request.args.get("limit", 20)), after))

    @app.get(f"{BASE}/items/<item_id>")
    def get_item(item_id: str) -> Response:
        handlers.check_bearer(request.headers.get("Authorization"))
        return _json(handlers.get_item(item_id))

    @app.post(f"{BASE}/items")
    def create_item() -> Response:
        handlers.check_bearer(request.headers.get("Authorization"))
        body = request.get_json(silent=True)
        # No schema: only what the handler cannot do without (the two required fields).
        if not isinstance(body, dict) or "name" not in body or "price" not in body:
            raise BadRequest("The body is invalid.", errors=[FieldError("body", "invalid")])
        item = handlers.create_item(
            body["name"],
            body["price"],
            body.get("tags"),
            body.get("quantity", 1),
            body.get("description"),
        )
        return _json(item, 201)

    return app


# ── connexion ───────────────────────────────────────────────────────────────────────────────


def _connexion_list(limit: int = 20, cursor: str | None = None) -> Any:
    after = handlers.decode_cursor(cursor) if cursor else None
    return handlers.list_items(limit, after), 200, _JSON_HEADERS


def _connexion_get(item_id: str) -> Any:
    return handlers.get_item(item_id), 200, _JSON_HEADERS


def _connexion_create(body: dict[str, Any]) -> Any:
    item = handlers.create_item(
        body["name"],
        body["price"],
        body.get("tags"),
        body.get("quantity", 1),
        body.get("description"),
    )
    return item, 201, _JSON_HEADERS


# The contract documents problem+json besides JSON, so Connexion wants the media type named.
_JSON_HEADERS = {"Content-Type": "application/json"}

CONNEXION_HANDLERS: dict[str, Callable[..., Any]] = {
    "listItems": _connexion_list,
    "getItem": _connexion_get,
    "createItem": _connexion_create,
}


def create_connexion() -> Any:
    """Connexion 3.3 ``FlaskApp`` with its defaults (request validation on)."""
    from connexion import FlaskApp
    from connexion.options import SwaggerUIOptions
    from connexion.resolver import Resolver

    # The Swagger UI is off: it is not on the request path, and its extra is not installed.
    app = FlaskApp("bench_connexion", swagger_ui_options=SwaggerUIOptions(swagger_ui=False))
    app.add_api(
        SPEC_PATH,
        resolver=Resolver(function_resolver=lambda operation_id: CONNEXION_HANDLERS[operation_id]),
    )
    app.app.register_error_handler(ApiError, _problem)
    return app


# ── openapi-core ────────────────────────────────────────────────────────────────────────────


def create_openapi_core() -> Flask:
    """Bare Flask plus openapi-core request validation (``unmarshal_request``) per view."""
    import functools

    from openapi_core import OpenAPI
    from openapi_core.contrib.flask import FlaskOpenAPIRequest
    from openapi_core.templating.security.exceptions import SecurityNotFound

    openapi = OpenAPI.from_file_path(str(SPEC_PATH))
    app = Flask("bench_openapi_core")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _problem(exc)

    def validated(view: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**path: Any) -> Response:
            result = openapi.unmarshal_request(FlaskOpenAPIRequest(request))
            if result.errors:
                causes = [e.__cause__ or e for e in result.errors]
                if any(isinstance(c, SecurityNotFound) for c in [*causes, *result.errors]):
                    raise Unauthenticated()
                raise BadRequest(
                    "The request breaks the contract.",
                    errors=[FieldError("request", _safe_str(c)) for c in causes],
                )
            handlers.check_bearer(request.headers.get("Authorization"))
            return view(result, **path)

        return wrapper

    @app.get(f"{BASE}/items")
    @validated
    def list_items(result: Any) -> Response:
        query = result.parameters.query
        cursor = query.get("cursor")
        after = handlers.decode_cursor(cursor) if cursor else None
        return _json(handlers.list_items(query.get("limit", 20), after))

    @app.get(f"{BASE}/items/<item_id>")
    @validated
    def get_item(result: Any, item_id: str) -> Response:
        return _json(handlers.get_item(result.parameters.path["item_id"]))

    @app.post(f"{BASE}/items")
    @validated
    def create_item(result: Any) -> Response:
        body = result.body
        item = handlers.create_item(
            body["name"],
            body["price"],
            body.get("tags"),
            body.get("quantity", 1),
            body.get("description"),
        )
        return _json(item, 201)

    return app


def _safe_str(exc: BaseException) -> str:
    # str() of some openapi-core errors raises for non-UTF-8 bodies (see shared notes).
    try:
        return str(exc)[:300]
    except Exception:
        return type(exc).__name__


FACTORIES: dict[str, Callable[[], Any]] = {
    "gantry": create_gantry,
    "floor": create_floor,
    "connexion": create_connexion,
    "openapi_core": create_openapi_core,
}


def serve(variant: str) -> Any:
    """What gunicorn serves (``bench.contract.apps:serve('floor')``): the variant's app, with
    logging off for every variant alike (Connexion logs each 4xx at error level)."""
    import logging

    logging.disable(logging.CRITICAL)
    return FACTORIES[variant]()
