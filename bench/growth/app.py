"""The real runtime over any generated package, with a handler for every operation.

``server.app.create_app`` serves the package in ``generated/`` only, with the handlers in
``server/handlers``. ``create_runtime_app`` wires the same runtime the same way over another
package (the gated Flask app, ``Dispatcher`` with its compiled parameter and body validators over
the package's one schema registry, response shapes, the generated routes, the contract gate, the
request hooks, problem+json errors) and leaves out what has nothing to do with the document:
storage, bootstrap and the docs assets. Every operation gets ``stub_handler`` and ``OpenGuard``,
so a request the contract admits runs the whole admission and answers 204.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from server.runtime.dispatch import Dispatcher, Handler
from server.runtime.gate import GatedFlask, install_contract_gate
from server.runtime.middleware import install_request_hooks
from server.runtime.pagination import CursorCodec
from server.runtime.problem import install_error_handlers
from server.runtime.schemas import SchemaBundle


class OpenGuard:
    """Admits every caller: no credential store to look a bearer token up in."""

    def authenticate(self, operation: Any, http: Any, session: Any) -> None:
        return None

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> None:
        return None


def stub_handler(request: Any) -> None:
    """Every operation's handler: nothing to do, 204."""
    return None


def stub_handlers(operation: Any) -> Handler:
    """The handler resolver ``Dispatcher`` (and ``create_app``) takes: the stub, always."""
    return stub_handler


def create_runtime_app(package: ModuleType) -> GatedFlask:
    """``create_app``'s runtime over ``package`` (a generated package, already imported)."""
    app = GatedFlask(package.__name__)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.json.sort_keys = False  # type: ignore[attr-defined]
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(package),
        models=package.models,
        guard=OpenGuard(),
        cursors=CursorCodec(b"bench-growth"),
        handlers=stub_handlers,
    )
    package.routes.register_routes(app, dispatcher.bind)
    install_contract_gate(app, dispatcher.admit)
    install_request_hooks(app)
    return app
