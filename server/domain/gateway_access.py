"""Who may call the AI gateway, and in which workspace (PRODUCT §3, §6.14).

The runtime has already checked that the credential carries the ``gateway`` scope (the data
plane's security schemes declare it). Here: a workspace API key acts in its own workspace with
its role, which must be operator or above; a personal access token names its workspace in
``X-Workspace-Id`` and acts there with its user's role, operator or above. A workspace the
caller cannot see is not found, as everywhere else.
"""

from __future__ import annotations

from server.domain import roles
from server.domain.actors import Principal
from server.domain.errors import Forbidden, Invalid, NotFound
from server.domain.gateway_config import CompiledRoutes
from server.domain.unit import UnitOfWork
from server.gateway.config import RouteConfig
from server.gateway.engine import Caller
from server.storage.workspaces import get_member_role
from server.vocabulary import SCOPE_ROLES

# The spec declares it on the data plane's security schemes (``x-gantry-scope-role``).
LEAST_ROLE = SCOPE_ROLES["gateway"]


def gateway_caller(
    uow: UnitOfWork, principal: Principal | None, requested_workspace: str | None
) -> Caller:
    """The workspace ``principal`` calls the gateway in, and what its calls are billed to."""
    if principal is None:
        raise Forbidden("The AI gateway needs a credential.", code="forbidden")
    if principal.kind == "api_key":
        workspace_id = principal.workspace_id
        if workspace_id is None or (requested_workspace not in (None, workspace_id)):
            raise NotFound("Workspace not found.")
        role = principal.key_role
    elif principal.kind == "pat":
        if requested_workspace is None:
            raise Invalid(
                "A personal access token names its workspace in the X-Workspace-Id header.",
                code="workspace_required",
                errors=[("header.X-Workspace-Id", "is required with a personal access token")],
            )
        assert principal.user_id is not None
        role = get_member_role(uow.db, requested_workspace, principal.user_id)
        if role is None:
            raise NotFound("Workspace not found.")
        workspace_id = requested_workspace
    else:
        raise Forbidden(
            "The AI gateway takes an API key or a token, not a session.", code="forbidden"
        )
    if not roles.at_least(role, LEAST_ROLE):
        raise Forbidden(
            f"Calling the AI gateway needs the {LEAST_ROLE} role; you are {role}.",
            code="insufficient_role",
        )
    return Caller(workspace_id=workspace_id, credential_id=principal.credential_id)


def gateway_call(
    uow: UnitOfWork,
    principal: Principal | None,
    requested_workspace: str | None,
    *,
    routes: CompiledRoutes,
) -> tuple[Caller, list[RouteConfig]]:
    """Everything a data-plane call needs from the database, read at once: who calls, in which
    workspace, and that workspace's routes (secrets opened; compiled again only when changed)."""
    caller = gateway_caller(uow, principal, requested_workspace)
    return caller, routes.current(uow, caller.workspace_id)
