"""Roles, who may grant them, credential kinds and statuses, actor types, token scope caps and
session lifetimes, declared once: in ``spec/openapi.yaml``.

The runtime, the domain, the ORM's check constraints and the contract suite read them from the
generated package (the spec's enums, ``TokenScope``'s ``x-gantry-role-caps`` and the top-level
``x-gantry-role-grants``), so a role added to the spec is a role everywhere after
`make generate` (and a migration for the check constraints).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import timedelta
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
    "ROLE_GRANTS",
    "SCOPE_CAPS",
    "SCOPE_ROLES",
    "SESSION_ABSOLUTE_TTL",
    "SESSION_IDLE_TTL",
    "USER_STATUSES",
    "WORKSPACE_ROLES",
    "duration",
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


def _role_grants() -> Mapping[str, frozenset[str]]:
    text = resources.files(generated).joinpath("openapi.json").read_text(encoding="utf-8")
    declared: dict[str, list[str]] = json.loads(text).get("x-gantry-role-grants") or {}
    grants = {role: frozenset(granted) for role, granted in declared.items()}
    named = set(grants).union(*grants.values())
    if not named <= set(WORKSPACE_ROLES):
        raise ValueError(f"x-gantry-role-grants names roles the spec does not have: {declared}")
    return MappingProxyType(grants)


# Which roles a member of each role may grant or take away (a role not listed: none).
ROLE_GRANTS: Mapping[str, frozenset[str]] = _role_grants()


_DURATION = re.compile(
    r"P(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?"
)


def duration(text: str) -> timedelta:
    """An ISO 8601 duration of weeks, days, hours, minutes and seconds (``PT12H``, ``P7D``)."""
    found = _DURATION.fullmatch(text)
    if found is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"not an ISO 8601 duration of weeks to seconds: {text!r}")
    return timedelta(**{unit: int(n) for unit, n in found.groupdict().items() if n})


def _session_lifetimes() -> tuple[timedelta, timedelta]:
    text = resources.files(generated).joinpath("openapi.json").read_text(encoding="utf-8")
    schemes = json.loads(text).get("components", {}).get("securitySchemes", {})
    for scheme in schemes.values():
        declared = scheme.get("x-gantry-session")
        if declared:
            return duration(str(declared["idle"])), duration(str(declared["absolute"]))
    raise ValueError("the cookie security scheme declares no x-gantry-session lifetimes")


# A cookie session ends when unused for the idle lifetime (each use extends it), and at the
# absolute lifetime after sign-in whatever its use.
SESSION_IDLE_TTL, SESSION_ABSOLUTE_TTL = _session_lifetimes()


def _scope_roles() -> Mapping[str, str]:
    text = resources.files(generated).joinpath("openapi.json").read_text(encoding="utf-8")
    schemes = json.loads(text).get("components", {}).get("securitySchemes", {})
    roles: dict[str, str] = {}
    for name, scheme in schemes.items():
        scope, role = scheme.get("x-gantry-scope"), scheme.get("x-gantry-scope-role")
        if scope is None or role is None:
            continue
        if role not in WORKSPACE_ROLES or roles.get(scope, role) != role:
            raise ValueError(f"securitySchemes.{name}: x-gantry-scope-role {role!r} for {scope!r}")
        roles[scope] = role
    return MappingProxyType(roles)


# The least workspace role a credential needs where a scope's security schemes are its whole
# permission (``x-gantry-scope-role``): the AI gateway's ``gateway`` scope, say.
SCOPE_ROLES: Mapping[str, str] = _scope_roles()
