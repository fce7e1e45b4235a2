"""Workspace roles, token scopes and the least-role vocabulary of ``x-gantry-min-role``."""

from __future__ import annotations

from server.vocabulary import SCOPE_CAPS, WORKSPACE_ROLES

_RANK = {role: rank for rank, role in enumerate(WORKSPACE_ROLES)}

# Least roles that are not workspace roles: who may call at all.
PUBLIC = "public"  # no credential
ANY = "any"  # any valid credential, API keys included
USER = "user"  # a user credential: session or personal access token
SESSION = "session"  # a cookie session only
SUPERADMIN = "superadmin"  # the instance-level flag
INSTANCE_LEVELS = frozenset({PUBLIC, ANY, USER, SESSION, SUPERADMIN})

# A personal access token acts with the user's roles, capped by its scopes (``SCOPE_CAPS``, from
# the spec), on every operation it can call (``scope_least_role``); a token without one of those
# scopes (``gateway`` alone) calls none of them.
READ_METHODS = frozenset({"GET", "HEAD"})


def rank(role: str) -> int:
    """Position of ``role`` in viewer < operator < editor < admin < owner."""
    return _RANK[role]


def at_least(role: str | None, least: str) -> bool:
    """Whether ``role`` is ``least`` or above."""
    return role is not None and _RANK[role] >= _RANK[least]


def scope_cap(scopes: frozenset[str]) -> str | None:
    """The highest workspace role a token with ``scopes`` may exercise, or None."""
    caps = [SCOPE_CAPS[s] for s in scopes if s in SCOPE_CAPS]
    return max(caps, key=rank) if caps else None


def scope_least_role(least: str, method: str) -> str:
    """The role a token's scopes must reach to call an operation whose least role is ``least``.

    A workspace operation needs its own least role; an instance operation needs the admin scope
    for superadmin work, and otherwise (any user's: the workspace list, creating a workspace)
    the read scope to read and the write scope to change anything.
    """
    if least in _RANK:
        return least
    if least == SUPERADMIN:
        return "owner"
    return "viewer" if method in READ_METHODS else "editor"


def lower(a: str, b: str) -> str:
    """The lower of two roles."""
    return a if _RANK[a] <= _RANK[b] else b
