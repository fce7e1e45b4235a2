"""Authentication and authorisation, in one place, driven by the operation table.

Handlers never re-type a least role: the dispatcher calls ``authorize`` with the operation's
``security`` and ``min_role`` from the spec. Workspace-scoped operations (a ``workspace_id``
path parameter, or on a flat path the workspace that owns the item it names, which the guard
puts in the path: ``server.runtime.ownership``) resolve the caller's role there; a non-member
gets 404 exactly as if the workspace did not exist, a member below the least role gets 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.orm import Session

from server.domain import roles
from server.domain.actors import Principal
from server.domain.errors import RuleError
from server.runtime.errors import Forbidden, NotFound, Unauthenticated, from_rule
from server.runtime.ownership import WORKSPACE_PARAM as WORKSPACE_PARAM

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "session"


class CredentialStore(Protocol):
    """Look-ups the auth layer needs from storage (``server.domain.credentials``)."""

    def by_bearer(self, db: Session, secret: str, now: datetime) -> Principal: ...

    def by_session(self, db: Session, value: str, now: datetime) -> Principal: ...

    def workspace_role(self, db: Session, workspace_id: str, user_id: str) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HttpCredentials:
    """The credential-bearing parts of an HTTP request."""

    method: str
    authorization: str | None
    session_cookie: str | None
    requested_with: str | None
    origin: str | None


def authenticate(
    store: CredentialStore, db: Session, creds: HttpCredentials, now: datetime | None = None
) -> Principal | None:
    """The caller, or None when no credential was sent. Bad credentials raise 401."""
    now = now or datetime.now(UTC)
    try:
        if creds.authorization is not None:
            scheme, _, secret = creds.authorization.strip().partition(" ")
            if scheme.lower() != "bearer" or not secret.strip():
                raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
            return store.by_bearer(db, secret.strip(), now)
        if creds.session_cookie:
            return store.by_session(db, creds.session_cookie, now)
    except RuleError as refused:
        raise from_rule(refused) from None
    return None


def check_csrf(
    principal: Principal, creds: HttpCredentials, allowed_origins: frozenset[str]
) -> None:
    """Cookie-authenticated writes need ``X-Requested-With`` and an allowed ``Origin``."""
    if principal.kind != "session" or creds.method not in UNSAFE_METHODS:
        return
    if (creds.requested_with or "").lower() != "xmlhttprequest":
        raise Forbidden(
            "Cookie-authenticated writes need the header X-Requested-With: XMLHttpRequest.",
            code="csrf_failed",
        )
    if creds.origin is None or creds.origin.rstrip("/") not in allowed_origins:
        raise Forbidden("The request Origin is not on the allow-list.", code="csrf_failed")


def authorize(
    store: CredentialStore,
    db: Session,
    principal: Principal | None,
    min_role: str | None,
    path: Mapping[str, object],
    method: str,
) -> str | None:
    """Enforce the operation's least role, and a PAT's scopes on every operation it can call;
    return the caller's workspace role, if any."""
    least = min_role or roles.ANY
    if least == roles.PUBLIC:
        return None
    if principal is None:
        raise Unauthenticated()
    if least == roles.ANY:
        _require_scope(principal, roles.scope_least_role(least, method))
        return None
    if least == roles.USER:
        _require_user(principal)
        _require_scope(principal, roles.scope_least_role(least, method))
        return None
    if least == roles.SESSION:
        if principal.kind != "session":
            raise Forbidden("This operation needs a signed-in session.", code="session_required")
        return None
    if least == roles.SUPERADMIN:
        _require_user(principal)
        if not principal.is_superadmin:
            raise Forbidden("Instance administrators only.", code="forbidden")
        _require_scope(principal, roles.scope_least_role(least, method))
        return None
    workspace_id = path.get(WORKSPACE_PARAM)
    if not isinstance(workspace_id, str):
        # Every operation with a workspace role names its workspace, in its path or through the
        # item it addresses: ``server.runtime.ownership`` refuses any other spec at start-up.
        raise RuntimeError(f"no workspace to hold the {least} role in")
    return require_role(store, db, principal, workspace_id, least)


def require_role(
    store: CredentialStore, db: Session, principal: Principal, workspace_id: str, least: str
) -> str:
    """The caller's effective role in ``workspace_id``: 404 if not visible, 403 if too low."""
    if principal.kind == "api_key":
        if principal.workspace_id != workspace_id or principal.key_role is None:
            raise NotFound("Workspace not found.")
        role = principal.key_role
    else:
        assert principal.user_id is not None
        member_role = store.workspace_role(db, workspace_id, principal.user_id)
        if member_role is None:
            raise NotFound("Workspace not found.")
        role = member_role
    if not roles.at_least(role, least):
        raise Forbidden(
            f"This operation needs the {least} role; you are {role}.", code="insufficient_role"
        )
    cap = _require_scope(principal, least)
    return role if cap is None else roles.lower(role, cap)


def _require_scope(principal: Principal, least: str) -> str | None:
    """A PAT's scope cap, when it reaches ``least`` (else 403 ``scope_denied``); None for any
    other credential, which no scope caps."""
    if principal.kind != "pat":
        return None
    cap = roles.scope_cap(principal.scopes)
    if cap is None or not roles.at_least(cap, least):
        raise Forbidden(f"The token's scopes do not allow {least} actions.", code="scope_denied")
    return cap


def _require_user(principal: Principal) -> None:
    if not principal.is_user:
        raise Forbidden("API keys cannot call this operation.", code="forbidden")


# A security scheme's ``x-gantry-scope``: a credential presented through it must carry that
# scope, which is its whole permission (a PAT's role caps do not apply).
SCOPE_KEY = "x-gantry-scope"


@dataclass(frozen=True, slots=True)
class DeclaredSchemes:
    """What the spec's security schemes declare beyond their type: each scheme's required scope
    and the WSGI key of the header an ``apiKey`` scheme reads."""

    scopes: Mapping[str, str]
    headers: Mapping[str, str]

    def required_scope(self, security: tuple[tuple[str, ...], ...]) -> str | None:
        """The scope every way of calling an operation requires, if they all require one."""
        needed = {self.scopes.get(name) for alternative in security for name in alternative}
        if len(needed) == 1 and None not in needed and all(security):
            return needed.pop()
        return None

    def header_credential(
        self, security: tuple[tuple[str, ...], ...], environ: Mapping[str, object]
    ) -> str | None:
        """A secret sent in an ``apiKey`` header the operation accepts, as a bearer value."""
        for alternative in security:
            for name in alternative:
                key = self.headers.get(name)
                value = environ.get(key) if key is not None else None
                if isinstance(value, str) and value.strip():
                    return f"Bearer {value.strip()}"
        return None


def declared_schemes(document: Mapping[str, object]) -> DeclaredSchemes:
    """The security schemes' declarations in the served spec."""
    components = document.get("components")
    schemes = components.get("securitySchemes") if isinstance(components, Mapping) else None
    scopes: dict[str, str] = {}
    headers: dict[str, str] = {}
    for name, scheme in (schemes or {}).items() if isinstance(schemes, Mapping) else ():
        if not isinstance(scheme, Mapping):
            continue
        if isinstance(scheme.get(SCOPE_KEY), str):
            scopes[name] = scheme[SCOPE_KEY]
        if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
            headers[name] = "HTTP_" + str(scheme.get("name", "")).upper().replace("-", "_")
    return DeclaredSchemes(scopes, headers)


def require_declared_scope(principal: Principal | None, scope: str) -> None:
    """403 ``scope_denied`` unless the caller's credential carries ``scope``."""
    if principal is None:
        raise Unauthenticated()
    if scope not in principal.scopes:
        raise Forbidden(
            f"This operation needs a credential with the {scope!r} scope.", code="scope_denied"
        )
