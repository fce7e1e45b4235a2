"""The app factory: every component of the server is wired here, in one visible place."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import resources
from types import ModuleType
from typing import Any

import generated
from generated import models as generated_models
from generated.routes import register_routes
from server.bootstrap import bootstrap
from server.config import Config
from server.docs import install_docs_assets
from server.domain.credentials import StorageCredentials
from server.domain.gateway_config import CompiledRoutes
from server.gateway.service import build_engine
from server.runtime.dispatch import (
    Dispatcher,
    GantryGuard,
    Guard,
    Handler,
    MissingHandlerError,
)
from server.runtime.gate import BODY_LIMITS_KEY, GatedFlask, install_contract_gate
from server.runtime.middleware import install_request_hooks
from server.runtime.pagination import CursorCodec
from server.runtime.problem import install_error_handlers
from server.runtime.ratelimit import RateLimiter, rate_limit_store
from server.runtime.schemas import SchemaBundle
from server.secrets_key import open_secret_box
from server.state import AppState
from server.storage.db import Database

log = logging.getLogger("gantry")


def load_spec_document(package: ModuleType = generated) -> dict[str, Any]:
    """The OpenAPI document the routes were generated from, as served at /openapi.json."""
    text = resources.files(package).joinpath("openapi.json").read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    # The generator stamps its provenance here; what is served is the spec exactly as written.
    document.pop("x-generated", None)
    return document


def create_app(
    config: Config | None = None,
    *,
    guard: Callable[[AppState], Guard] | None = None,
    handlers: Callable[[Any], Handler] | None = None,
) -> GatedFlask:
    """Build the API: storage, compiled validators, generated routes, handlers.

    ``guard`` builds the auth step from the app state (default ``GantryGuard``) and ``handlers``
    finds an operation's handler (default ``resolve_handler``); tools and tests may wrap them.
    """
    config = config or Config.from_env()
    database = Database.from_url(config.database_url, config.var_dir)
    if config.auto_migrate:
        database.migrate()

    app = GatedFlask("gantry")
    app.config["MAX_CONTENT_LENGTH"] = config.max_body_bytes
    # An artifact upload may carry a file up to its own limit, plus the multipart framing.
    app.config[BODY_LIMITS_KEY] = {"uploadRunArtifact": config.artifact_max_bytes + (64 << 10)}
    # Only the methods the spec declares exist; an undeclared OPTIONS is a 405 like any other.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]

    shared_limits = rate_limit_store(config, database)
    secret_box = open_secret_box(config, database)
    state = AppState(
        config=config,
        database=database,
        credentials=StorageCredentials(),
        cursors=CursorCodec(config.secret_key.encode()),
        spec_document=load_spec_document(),
        login_limiter=RateLimiter(shared_limits, config.login_rate_per_minute, per=60.0),
        secret_box=secret_box,
        gateway=build_engine(
            config,
            read_sessions=database.read_sessionmaker,
            write_sessions=database.write_sessionmaker,
            hits=shared_limits,
        ),
        gateway_routes=CompiledRoutes(secret_box),
    )
    app.extensions["gantry"] = state

    install_error_handlers(app)
    install_docs_assets(app, state)

    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(generated),
        models=generated_models,
        guard=(guard or GantryGuard)(state),
        cursors=state.cursors,
        session_factory=database.read_sessionmaker,
        write_session_factory=database.write_sessionmaker,
        state=state,
        handlers=handlers,
    )
    missing: list[str] = []

    def bind(operation: Any) -> Any:
        try:
            return dispatcher.bind(operation)
        except MissingHandlerError as exc:
            missing.append(str(exc))
            return None

    register_routes(app, bind)
    if missing:
        raise MissingHandlerError("; ".join(missing))
    # The WSGI layers, innermost first: the gate admits or refuses each API request before
    # Flask's request cycle; the request hooks around it stamp every answer, the gate's too.
    install_contract_gate(app, dispatcher.admit, dispatcher.error_formats)
    install_request_hooks(app)

    bootstrap(state)
    return app
