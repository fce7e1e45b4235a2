"""`create_mock_app(spec)`: any OpenAPI document served by the real runtime, answering by the spec.

The same pieces as `server.app.create_app`, minus storage: the generated routes, the dispatcher
with its compiled parameter and body validators, request ids and problem+json errors (400, 401,
404, 405, 415 exactly as the server answers them). Only the guard (`MockGuard`: credentials
checked by presence) and the handlers (`Responder`: documented examples or synthesised values)
differ. List operations are not paginated: the mock has no cursors to check. It runs without the
contract gate (``server.runtime.gate``): credentials sent in the query are set aside before its
views admit a request themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from flask import request as flask_request
from werkzeug.datastructures import ImmutableMultiDict

from server.mock.guard import MockGuard
from server.mock.package import generate_package, import_package
from server.mock.responder import Responder
from server.mock.synth import Synthesizer
from server.runtime.dispatch import Dispatcher
from server.runtime.middleware import install_request_hooks
from server.runtime.pagination import CursorCodec
from server.runtime.problem import PROBLEM_JSON, install_error_handlers
from server.runtime.schemas import SchemaBundle


def create_mock_app(spec_path: str | Path, *, cache_dir: Path | None = None) -> Flask:
    """A Flask app that mocks the API `spec_path` describes (see the module docstring)."""
    package = import_package(generate_package(Path(spec_path), cache_dir))
    operations, models, routes = package.operations, package.models, package.routes

    app = Flask("gantry-mock", static_folder=None)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # an undeclared OPTIONS is a 405
    app.extensions["gantry_mock"] = package
    install_request_hooks(app)
    install_error_handlers(app)

    bundle = SchemaBundle.from_package(package)
    synth = Synthesizer(bundle)
    responders = {op.operation_id: Responder(op, synth) for op in operations.OPERATIONS}
    dispatcher = Dispatcher(
        bundle=bundle,
        models=models,
        guard=MockGuard(operations.SECURITY_SCHEMES),
        cursors=CursorCodec(b"gantry-mock"),
        handlers=lambda operation: responders[operation.operation_id],
    )

    def bind(operation: Any) -> Callable[..., Any]:
        view = _as_documented(
            dispatcher.bind(dataclasses.replace(operation, is_list=False)),
            responders[operation.operation_id],
        )
        hidden = _query_credentials(operation, operations.SECURITY_SCHEMES)
        if not hidden:
            return view

        def credentials_aside(**path: str) -> Any:
            # API keys sent in the query are credentials, not parameters of the operation.
            args = flask_request.args
            kept = [(k, v) for k, v in args.items(multi=True) if k not in hidden]
            flask_request.__dict__["args"] = ImmutableMultiDict(kept)
            try:
                return view(**path)
            finally:
                flask_request.__dict__["args"] = args

        credentials_aside.__name__ = view.__name__
        return credentials_aside

    routes.register_routes(app, bind)
    return app


def _as_documented(view: Callable[..., Any], responder: Responder) -> Callable[..., Any]:
    """`view`, its refusals answered as the operation documents them (`Responder.refusal`)."""

    def documented_refusals(**path: str) -> Any:
        response = view(**path)
        if response.status_code >= 400 and response.mimetype == PROBLEM_JSON:
            return responder.refusal(response)
        return response

    documented_refusals.__name__ = view.__name__
    return documented_refusals


def _query_credentials(operation: Any, schemes: Any) -> frozenset[str]:
    """Names of the query parameters that carry an API key this operation accepts."""
    found = set()
    for alternative in operation.security:
        for name in alternative:
            scheme = schemes.get(name)
            if scheme is not None and scheme.type == "apiKey" and scheme.location == "query":
                found.add(scheme.parameter_name)
    declared = {p.name for p in operation.parameters if p.location == "query"}
    return frozenset(found - declared)
