"""Authentication and authorisation, in one place, driven by the operation table.

Handlers never re-type a least role: the dispatcher calls ``authorize`` with the operation's
``security`` and ``min_role`` from the spec. Workspace-scoped operations (a ``workspace_id``
path parameter) resolve the caller's role there; a non-member gets 404 exactly as if the
workspace did not exist, a member below the least role gets 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy.orm import Session

from server.runtime import roles
from server.runtime.errors import Forbidden, NotFound, Unauthenticated

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SESSION_COOKIE = "session"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and with which credential."""

    kind: str  # "session" | "pat" | "api_key"
    credential_id: str
    label: str
    user_id: str | None = None
    is_superadmin: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    workspace_id: str | None = None  # API keys act in one workspace …
    key_role: str | None = None  # … with a fixed role

    @property
    def is_user(self) -> bool:
        """Whether the credential belongs to a user (session or personal access token)."""
        return self.kind in ("session", "pat")

    @property
    def actor_type(self) -> str:
        """The audit actor type of this principal."""
        return "api_key" if self.kind == "api_key" else "user"

    @property
    def actor_id(self) -> str:
        """The audit actor id: the user, or the API key."""
        return self.user_id if self.user_id is not None else self.credential_id


class CredentialStore(Protocol):
    """Look-ups the auth layer needs from storage (``server.runtime.credentials``)."""

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
    if creds.authorization is not None:
        scheme, _, secret = creds.authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise Unauthenticated("The Authorization header must be 'Bearer <token>'.")
        return store.by_bearer(db, secret.strip(), now)
    if creds.session_cookie:
        return store.by_session(db, creds.session_cookie, now)
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
    workspace_id = path.get("workspace_id")
    if not isinstance(workspace_id, str):
        # Workspace roles on flat item paths are checked by the handler once it has loaded
        # the item (``require_role``); a token's scopes do not depend on the item.
        _require_scope(principal, least)
        return None
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
