"""Roles, credential kinds and statuses, actor types and token scope caps, declared once: in
``spec/openapi.yaml``.

The runtime, the ORM's check constraints and the contract suite read them from the generated
package (the spec's enums, and ``TokenScope``'s ``x-gantry-role-caps``), so a role added to the
spec is a role everywhere after `make generate` (and a migration for the check constraints).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from types import MappingProxyType

import generated
from generated.models import (
    ActorType,
    ApiKeyRole,
    CredentialKind,
    CredentialStatus,
    Role,
    UserStatus,
)

__all__ = [
    "ACTOR_TYPES",
    "API_KEY_ROLES",
    "CREDENTIAL_KINDS",
    "CREDENTIAL_STATUSES",
    "SCOPE_CAPS",
    "USER_STATUSES",
    "WORKSPACE_ROLES",
]

# In increasing order of privilege, as the spec's enum lists them.
WORKSPACE_ROLES: tuple[str, ...] = tuple(role.value for role in Role)
API_KEY_ROLES: tuple[str, ...] = tuple(role.value for role in ApiKeyRole)
CREDENTIAL_KINDS: tuple[str, ...] = tuple(kind.value for kind in CredentialKind)
CREDENTIAL_STATUSES: tuple[str, ...] = tuple(status.value for status in CredentialStatus)
USER_STATUSES: tuple[str, ...] = tuple(status.value for status in UserStatus)
ACTOR_TYPES: tuple[str, ...] = tuple(actor.value for actor in ActorType)


def _scope_caps() -> Mapping[str, str]:
    text = resources.files(generated).joinpath("schemas.json").read_text(encoding="utf-8")
    token_scope = json.loads(text)["components"]["schemas"]["TokenScope"]
    caps: dict[str, str] = dict(token_scope["x-gantry-role-caps"])
    unknown = {scope: role for scope, role in caps.items() if role not in WORKSPACE_ROLES}
    if unknown or not set(caps) <= set(token_scope["enum"]):
        raise ValueError(f"TokenScope's x-gantry-role-caps do not match the spec's enums: {caps}")
    return MappingProxyType(caps)


# A personal access token acts with the user's roles, capped by its scopes.
SCOPE_CAPS: Mapping[str, str] = _scope_caps()
