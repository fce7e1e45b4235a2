"""Roles, statuses and scope caps are declared once, in the spec: everything else reads them."""

from __future__ import annotations

from typing import Any

from server.domain import gateway_access, roles
from server.storage.models import ApiKey, Membership, User
from server.vocabulary import (
    API_KEY_ROLES,
    ROLE_GRANTS,
    SCOPE_CAPS,
    SCOPE_ROLES,
    USER_STATUSES,
    WORKSPACE_ROLES,
)


def _schema(spec_document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = spec_document["components"]["schemas"][name]
    return schema


def test_the_vocabulary_is_the_specs(spec_document: dict[str, Any]) -> None:
    assert list(WORKSPACE_ROLES) == _schema(spec_document, "Role")["enum"]
    assert list(API_KEY_ROLES) == _schema(spec_document, "ApiKeyRole")["enum"]
    assert list(USER_STATUSES) == _schema(spec_document, "UserStatus")["enum"]
    assert dict(SCOPE_CAPS) == _schema(spec_document, "TokenScope")["x-gantry-role-caps"]
    declared = spec_document["x-gantry-role-grants"]
    assert {role: set(granted) for role, granted in ROLE_GRANTS.items()} == {
        role: set(granted) for role, granted in declared.items()
    }
    schemes = spec_document["components"]["securitySchemes"].values()
    assert dict(SCOPE_ROLES) == {
        s["x-gantry-scope"]: s["x-gantry-scope-role"] for s in schemes if "x-gantry-scope" in s
    }
    assert SCOPE_ROLES["gateway"] == gateway_access.LEAST_ROLE


def test_the_runtime_ranks_roles_in_the_specs_order() -> None:
    ranked = sorted(WORKSPACE_ROLES, key=roles.rank)
    assert ranked == list(WORKSPACE_ROLES)
    assert roles.scope_cap(frozenset({"read", "write"})) == SCOPE_CAPS["write"]


def test_the_check_constraints_name_every_value() -> None:
    def constraint_text(model: Any, column: str) -> str:
        (found,) = [
            str(c.sqltext)
            for c in model.__table__.constraints
            if getattr(c, "sqltext", None) is not None and str(c.sqltext).startswith(column)
        ]
        return found

    assert all(repr(r) in constraint_text(Membership, "role") for r in WORKSPACE_ROLES)
    assert all(repr(r) in constraint_text(ApiKey, "role") for r in API_KEY_ROLES)
    assert all(repr(s) in constraint_text(User, "status") for s in USER_STATUSES)
