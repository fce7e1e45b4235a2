"""The people and resources the suite needs, built through the public API of the target.

Everything here goes over HTTP with the superadmin token, so the same world is built in-process
and against a live server:

* the **example people**: every email that the spec's request examples pair with a password
  (``ada@example.com`` signs in in the ``login`` example) exists, active, with that password;
* a **user per workspace role** plus an outsider, each signed in once (a cookie session) and
  holding a personal access token with every scope;
* **scopes**: a workspace owned by the ``owner`` user, with a member and an API key of each
  role; a fresh scope is made whenever a request could destroy or fill up the shared one;
* **callers**: one per kind of credential the spec distinguishes (see ``callers``).

The world is built on Gantry's tenancy core (users, sessions, tokens, workspaces, members, API
keys), whose facts (token scopes, API key roles, session lifetimes, the examples' password)
come from the *core* document the target serves; the document under test may be that same
document, or one that adds resources to the core (``World(target, document, core=...)``).

Requests built from the spec (``request_for``) take the operation's example body and adjust only
what a second run cannot reuse, by the *type* of each property: ``Email`` and ``Slug`` values are
made unique in operations that create something (201), in operations under a workspace a
``UserId``/``Email`` names a real user who is not a member yet, and an id of a resource
(``x-gantry-resource``, at any depth) names one made in the request's workspace by the
resource's create. Path parameters come from the operations that produce them, found through the
spec's OpenAPI links, else through the resource the parameter names; a header that names the
workspace gets the request's. An operation's declared set-up (``x-gantry-given``) is made once
per workspace before it is called there. No operation is named.
"""

from __future__ import annotations

import itertools
import json
import re
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from contract_tests import rules, spec
from contract_tests.sending import cookie_less_session
from contract_tests.spec import Document, Link
from contract_tests.target import Target, run_id
from generated.operations import Operation

CSRF_HEADER = ("X-Requested-With", "XMLHttpRequest")
_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")
SESSION_COOKIE = "session"
API_KEYS_PATH = "/workspaces/{workspace_id}/api-keys"  # the tenancy core's API keys
DEFAULT_PASSWORD = "contract-suite-password"
EMAIL_DOMAIN = "example.com"
MAX_RATE_LIMIT_WAIT = 75.0  # seconds to wait in total for one rate-limited request (live mode)
SETTLE_TRIES, SETTLE_PAUSE = 50, 0.05  # reading back what an answer names only in a header
# The shortest PAT lifetime the spec allows (1 day), with room for the request's own delay: the
# clock moves past it (and past a session's lifetimes, ``x-gantry-session``) for expired callers.
_SHORTEST = timedelta(days=1, hours=1)


# The token scopes that cap a PAT below every role (``TokenScope``'s ``x-gantry-role-caps``),
# lowest cap first: the owner holds a PAT of each besides their every-scope one.
CAPPED_SCOPES = tuple(
    sorted(
        (s for s, cap in spec.SCOPE_CAPS.items() if cap != spec.WORKSPACE_ROLES[-1]),
        key=lambda s: spec.rank(spec.SCOPE_CAPS[s]),
    )
)

# The callers of the auth matrix, one per kind of credential the spec tells apart (``callers``).
CALLER_NAMES = (
    "anonymous",
    "malformed_token",
    "unknown_pat",
    "expired_key",
    "revoked_key",
    "expired_pat",
    "revoked_pat",
    "idle_session",
    "expired_session",
    "revoked_session",
    "blocked_user_pat",
    "blocked_user_session",
    *(f"{role}_pat" for role in spec.WORKSPACE_ROLES),
    *(f"owner_{scope}_pat" for scope in CAPPED_SCOPES),
    "non_member_pat",
    "superadmin_pat",
    *(f"{role}_api_key" for role in spec.API_KEY_ROLES),
    "foreign_api_key",
    "owner_session",
)


class WorldError(RuntimeError):
    """The world could not be built: the server refused a request the spec says must work."""


@dataclass(frozen=True)
class Caller:
    """One credential, and what the spec's auth rules need to know about it."""

    name: str
    kind: str  # none | invalid | session | pat | api_key
    headers: Mapping[str, str] = field(default_factory=dict)
    cookies: Mapping[str, str] = field(default_factory=dict)
    invalid_code: str | None = None  # for kind "invalid": the 401 code it must get
    superadmin: bool = False
    scopes: frozenset[str] = frozenset()
    role: str | None = None  # role in the scope's workspace (resolved per scope)
    user: str | None = None  # the user's role name in the world ("owner", "outsider"…)
    key_role: str | None = None  # for API keys of the scope: the key's role
    # A credential that is only invalid later: the server's clock is moved by ``clock_shift``
    # while it is used; ``unavailable`` says why it cannot be used (a live server's clock).
    clock: Any = None
    clock_shift: timedelta | None = None
    unavailable: str | None = None

    def describe(self) -> str:
        return self.name


@dataclass
class Account:
    """A user of the world with a session and an all-scope PAT."""

    name: str
    id: str
    email: str
    password: str
    session: str = ""
    pat: str = ""
    superadmin: bool = False


@dataclass
class Scope:
    """A workspace with a member and an API key of each role (the owner created it)."""

    workspace_id: str
    members: dict[str, str]  # role -> user name in the world
    keys: dict[str, str]  # key role -> secret


class World:
    """Builds and remembers the suite's fixtures on one target."""

    def __init__(self, target: Target, document: Document, core: Document | None = None) -> None:
        self.target = target
        self.doc = document
        self.core = core or document  # the tenancy core's document (see the module docstring)
        # A cookie session's lifetimes (idle, absolute), as the core declares them.
        self.session_lifetimes = self.core.session_lifetimes()
        self.http = cookie_less_session()
        self.run = run_id()
        self._counter = itertools.count(1)
        self.origin = target.base_url
        self.accounts: dict[str, Account] = {}
        self.password = self._examples_password()
        self.token_scopes = self._token_scopes()
        self.key_scopes = self._key_scopes()
        self.extra_callers: dict[str, Caller] = {}
        self._cache: dict[tuple[str, str, str], Any] = {}
        self._references: dict[tuple[str, str], Any] = {}  # (resource, workspace) -> an id
        self._making: set[tuple[str, str]] = set()
        self._prepared: set[tuple[str, str]] = set()  # (operationId, workspace) set up
        self._spare_scopes: dict[str, Scope] = {}  # operationId -> where refused callers act
        self.given = rules.given_steps(document)
        self._creators: dict[str, tuple[str, str] | None] = {}
        self.scope: Scope | None = None
        self.foreign_scope: Scope | None = None

    # ── HTTP ──────────────────────────────────────────────────────────────────────────────────

    def send(
        self,
        method: str,
        path: str,
        *,
        caller: Caller | None = None,
        bearer: str | None = None,
        session: str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        expect: int | None = None,
        headers: Mapping[str, str] | None = None,
        files: list[tuple[str, Any]] | None = None,
    ) -> requests.Response:
        """One request to the API; waits out 429 (live servers rate-limit sign-ins)."""
        sent: dict[str, str] = dict(headers or {})
        cookies: dict[str, str] = {}
        if caller is not None:
            sent.update(caller.headers)
            cookies.update(caller.cookies)
        if bearer:
            sent["Authorization"] = f"Bearer {bearer}"
        if session:
            cookies[SESSION_COOKIE] = session
            sent.update(self.csrf_headers())
        waited = 0.0
        while True:
            response = self.http.request(
                method,
                self.target.url(path),
                headers=sent,
                cookies=cookies,
                json=json,
                params=params,
                files=files,
                timeout=60,
            )
            if response.status_code != 429 or waited >= MAX_RATE_LIMIT_WAIT:
                break
            pause = min(float(response.headers.get("Retry-After", "5") or 5), 30.0) + 0.5
            time.sleep(pause)
            waited += pause
        if expect is not None and response.status_code != expect:
            raise WorldError(
                f"{method} {path} answered {response.status_code}, expected {expect}: "
                f"{response.text[:500]}"
            )
        return response

    def csrf_headers(self) -> dict[str, str]:
        """What a browser on the server's own origin sends with a cookie write."""
        return {CSRF_HEADER[0]: CSRF_HEADER[1], "Origin": self.origin}

    def unique(self, stem: str) -> str:
        return f"{stem}-{self.run}-{next(self._counter)}"

    def unique_email(self, stem: str = "user") -> str:
        return f"{self.unique(stem)}@{EMAIL_DOMAIN}"

    # ── what the spec's examples assume ───────────────────────────────────────────────────────

    def _examples_password(self) -> str:
        """The password the examples expect a signed-in user to have (``current_password``)."""
        for doc in (self.core, self.doc):
            for _, _, definition in doc.definitions():
                example = doc.example_of(definition)
                if isinstance(example, Mapping) and isinstance(
                    example.get("current_password"), str
                ):
                    return str(example["current_password"])
        return DEFAULT_PASSWORD

    def _token_scopes(self) -> list[str]:
        """Every personal access token scope (the enum of the scopes a session-only create of
        the core takes: ``TokenScope``)."""
        for method, _, definition in self.core.definitions():
            if method != "POST" or definition.get("x-gantry-min-role") != "session":
                continue
            scopes = self.core.body_schema_of(definition).get("properties", {}).get("scopes")
            items = self.core.resolve((scopes or {}).get("items", {}))
            if items.get("enum") and set(spec.SCOPE_CAPS) <= set(items["enum"]):
                return [str(s) for s in items["enum"]]
        return []

    def _key_scopes(self) -> list[str]:
        """Every API key scope (the enum of the ``scopes`` an API key is created with): the
        world's keys carry them all, so a key's role is what limits it."""
        item = (self.core.raw.get("paths") or {}).get(API_KEYS_PATH) or {}
        definition = item.get("post") if isinstance(item, Mapping) else None
        if not isinstance(definition, Mapping):
            return []
        scopes = self.core.body_schema_of(definition).get("properties", {}).get("scopes")
        items = self.core.resolve((scopes or {}).get("items", {}))
        return [str(s) for s in items.get("enum") or ()]

    def example_people(self) -> dict[str, str]:
        """Email -> password for every person the request examples sign in as."""
        people: dict[str, str] = {}
        for op in spec.operations():
            example = self.doc.request_example(op)
            if (
                isinstance(example, Mapping)
                and isinstance(example.get("email"), str)
                and isinstance(example.get("password"), str)
                and not self._creates(op)
            ):
                people[str(example["email"])] = str(example["password"])
        for op in spec.operations():  # people looked up by a query example
            for p in op.parameters:
                value = self.doc.parameter_example(op, p.name) if p.location == "query" else None
                if p.name == "email" and isinstance(value, str):
                    people.setdefault(value, self.password)
        return people

    def _creates(self, op: Operation) -> bool:
        return 201 in spec.success_statuses(op)

    # ── building ──────────────────────────────────────────────────────────────────────────────

    def build(self) -> World:
        """Create the example people, the accounts, the shared scope and the callers."""
        for email, password in self.example_people().items():
            self.ensure_user(email, password)
        superadmin = self.send("GET", "/auth/me", bearer=self.target.token, expect=200).json()
        if not (superadmin.get("user") or {}).get("is_superadmin"):
            raise WorldError("the suite's token must belong to a superadmin")
        self.accounts["superadmin"] = Account(
            name="superadmin",
            id=superadmin["user"]["id"],
            email=superadmin["user"]["email"],
            password="",
            pat=self.target.token,
            superadmin=True,
        )
        for name in (*spec.WORKSPACE_ROLES, "outsider"):
            self.accounts[name] = self.new_account(name, with_pat=True)
        self.scope = self.new_scope()
        self.foreign_scope = self.new_scope(members=False)
        self._extra_callers()
        return self

    def ensure_user(self, email: str, password: str) -> str:
        """An active user with this email and password (created, or reset by the superadmin)."""
        created = self.send(
            "POST",
            "/admin/users",
            bearer=self.target.token,
            json={"email": email, "name": email.split("@")[0], "password": password},
        )
        if created.status_code == 201:
            return str(created.json()["id"])
        if created.status_code != 409:
            raise WorldError(f"cannot create {email}: {created.status_code} {created.text[:300]}")
        found = self.send(
            "GET",
            "/admin/users",
            bearer=self.target.token,
            params={"q": email, "limit": 200},
            expect=200,
        ).json()["items"]
        user = next(u for u in found if u["email"].lower() == email.lower())
        self.send(
            "PATCH",
            f"/admin/users/{user['id']}",
            bearer=self.target.token,
            json={"password": password, "status": "active"},
            expect=200,
        )
        return str(user["id"])

    def new_user(self, stem: str = "user") -> tuple[str, str]:
        """A fresh active user: (id, email)."""
        email = self.unique_email(stem)
        user_id = self.ensure_user(email, self.password)
        return user_id, email

    def login(self, email: str, password: str) -> str:
        response = self.send(
            "POST", "/auth/login", json={"email": email, "password": password}, expect=200
        )
        value = response.cookies.get(SESSION_COOKIE)
        if not value:
            for header in response.raw.headers.getlist("Set-Cookie"):
                name, _, rest = header.partition("=")
                if name.strip() == SESSION_COOKIE:
                    value = rest.split(";", 1)[0]
        if not value:
            raise WorldError("login set no session cookie")
        return value

    def new_account(self, name: str, *, with_pat: bool) -> Account:
        user_id, email = self.new_user(name)
        account = Account(name=name, id=user_id, email=email, password=self.password)
        account.session = self.login(email, self.password)
        if with_pat:
            account.pat = self.new_pat(account.session, self.token_scopes)[1]
        return account

    def new_pat(
        self,
        session: str,
        scopes: list[str],
        name: str = "contract",
        lifetime: timedelta = timedelta(days=30),
    ) -> tuple[str, str]:
        """(id, secret) of a new personal access token of the session's user."""
        expires = (datetime.now(UTC) + lifetime).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = self.send(
            "POST",
            "/tokens",
            session=session,
            json={"name": name, "scopes": scopes, "expires_at": expires},
            expect=201,
        ).json()
        return str(body["id"]), str(body["token"])

    def new_scope(self, *, members: bool = True) -> Scope:
        owner = self.accounts["owner"]
        ws = self.send(
            "POST",
            "/workspaces",
            bearer=owner.pat,
            json={"name": self.unique("Contract"), "slug": self.unique("contract").lower()},
            expect=201,
        ).json()
        scope = Scope(workspace_id=ws["id"], members={"owner": "owner"}, keys={})
        if members:
            for role in spec.WORKSPACE_ROLES[:-1]:
                self.send(
                    "POST",
                    f"/workspaces/{ws['id']}/members",
                    bearer=owner.pat,
                    json={"user_id": self.accounts[role].id, "role": role},
                    expect=201,
                )
                scope.members[role] = role
        for role in spec.API_KEY_ROLES if members else spec.API_KEY_ROLES[-1:]:
            scope.keys[role] = self.new_api_key(ws["id"], role)[1]
        return scope

    def new_api_key(
        self, workspace_id: str, role: str, expires_at: str | None = None
    ) -> tuple[str, str]:
        body = self.send(
            "POST",
            API_KEYS_PATH.replace("{workspace_id}", workspace_id),
            bearer=self.accounts["owner"].pat,
            json={
                "name": self.unique(f"key-{role}"),
                "role": role,
                "expires_at": expires_at,
                **({"scopes": self.key_scopes} if self.key_scopes else {}),
            },
            expect=201,
        ).json()
        return str(body["id"]), str(body["key"])

    def _extra_callers(self) -> None:
        assert self.scope is not None
        owner = self.accounts["owner"]
        ws = self.scope.workspace_id
        past = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        _, expired_key = self.new_api_key(ws, "viewer", expires_at=past)
        revoked_key_id, revoked_key = self.new_api_key(ws, "viewer")
        self.send(
            "DELETE", f"/workspaces/{ws}/api-keys/{revoked_key_id}", bearer=owner.pat, expect=204
        )
        revoked_pat_id, revoked_pat = self.new_pat(owner.session, self.token_scopes, "revoked")
        self.send("DELETE", f"/tokens/{revoked_pat_id}", session=owner.session, expect=204)
        capped = {s: self.new_pat(owner.session, [s], s)[1] for s in CAPPED_SCOPES}
        blocked = self.new_account("blocked", with_pat=True)
        self.send(
            "PATCH",
            f"/admin/users/{blocked.id}",
            bearer=self.target.token,
            json={"status": "blocked"},
            expect=200,
        )
        # A PAT lives at least a day and a session is made by signing in: both expire only on
        # the server's clock, which the suite moves past their lifetime while they are used.
        _, short_pat = self.new_pat(owner.session, self.token_scopes, "short", lifetime=_SHORTEST)
        clock = self.target.clock
        unavailable = None if clock else "needs the server's clock (in-process only)"
        idle, absolute = self.session_lifetimes or (timedelta(0), timedelta(0))
        session_unavailable = unavailable or (
            None if self.session_lifetimes else "the spec declares no session lifetimes"
        )
        # Sign-ins are rate-limited on a live server: only make the sessions that will be used.
        idle_session = "" if session_unavailable else self.login(owner.email, owner.password)
        expiring_session = "" if session_unavailable else self.login(owner.email, owner.password)
        signed_out = self.login(owner.email, owner.password)
        self.send("POST", "/auth/logout", session=signed_out, expect=204)
        self.extra_callers = {
            "expired_key": Caller(
                "expired_key", "invalid", _bearer(expired_key), invalid_code="token_expired"
            ),
            "revoked_key": Caller(
                "revoked_key", "invalid", _bearer(revoked_key), invalid_code="token_revoked"
            ),
            "revoked_pat": Caller(
                "revoked_pat", "invalid", _bearer(revoked_pat), invalid_code="token_revoked"
            ),
            "expired_pat": Caller(
                "expired_pat",
                "invalid",
                _bearer(short_pat),
                invalid_code="token_expired",
                clock=clock,
                clock_shift=_SHORTEST + timedelta(hours=2),
                unavailable=unavailable,
            ),
            "idle_session": Caller(
                "idle_session",
                "invalid",
                self.csrf_headers(),
                {SESSION_COOKIE: idle_session},
                invalid_code="token_expired",
                clock=clock,
                clock_shift=idle + timedelta(hours=1),
                unavailable=session_unavailable,
            ),
            "expired_session": Caller(
                "expired_session",
                "invalid",
                self.csrf_headers(),
                {SESSION_COOKIE: expiring_session},
                invalid_code="token_expired",
                clock=clock,
                clock_shift=absolute + timedelta(hours=1),
                unavailable=session_unavailable,
            ),
            # A blocked user's credentials, and a signed-out session: any documented 401 code.
            "blocked_user_pat": Caller("blocked_user_pat", "invalid", _bearer(blocked.pat)),
            "blocked_user_session": Caller(
                "blocked_user_session",
                "invalid",
                self.csrf_headers(),
                {SESSION_COOKIE: blocked.session},
            ),
            **{
                f"owner_{s}_pat": Caller(
                    f"owner_{s}_pat", "pat", _bearer(capped[s]), user="owner", scopes=frozenset({s})
                )
                for s in capped
            },
            "revoked_session": Caller(
                "revoked_session", "invalid", self.csrf_headers(), {SESSION_COOKIE: signed_out}
            ),
        }

    # ── callers ───────────────────────────────────────────────────────────────────────────────

    def callers(self, scope: Scope | None = None) -> list[Caller]:
        """One caller per kind of credential, with roles resolved in ``scope``.

        none; malformed and unknown bearer tokens; expired and revoked API keys; a revoked PAT;
        a PAT of each workspace member (every scope) and of a non-member; a read-only PAT; the
        superadmin's PAT (not a member); an API key of each key role and one of another
        workspace; and the owner's cookie session (with the CSRF headers).
        """
        scope = scope or self.scope
        assert scope is not None and self.foreign_scope is not None
        all_scopes = frozenset(self.token_scopes)
        result = [
            Caller("anonymous", "none"),
            Caller(
                "malformed_token",
                "invalid",
                {"Authorization": "Bearer not-a-gantry-token"},
                invalid_code="unauthenticated",
            ),
            Caller(
                "unknown_pat",
                "invalid",
                _bearer("pat_" + "Unknown0Token0" * 2 + "abcdefghijkl"),
                invalid_code="unauthenticated",
            ),
            self.extra_callers["expired_key"],
            self.extra_callers["revoked_key"],
            self.extra_callers["expired_pat"],
            self.extra_callers["revoked_pat"],
            self.extra_callers["idle_session"],
            self.extra_callers["expired_session"],
            self.extra_callers["revoked_session"],
            self.extra_callers["blocked_user_pat"],
            self.extra_callers["blocked_user_session"],
        ]
        for role in spec.WORKSPACE_ROLES:
            account = self.accounts[role]
            result.append(
                Caller(f"{role}_pat", "pat", _bearer(account.pat), scopes=all_scopes, user=role)
            )
        result.extend(self.extra_callers[f"owner_{scope}_pat"] for scope in CAPPED_SCOPES)
        result.append(
            Caller(
                "non_member_pat",
                "pat",
                _bearer(self.accounts["outsider"].pat),
                scopes=all_scopes,
                user="outsider",
            )
        )
        result.append(
            Caller(
                "superadmin_pat",
                "pat",
                _bearer(self.target.token),
                scopes=all_scopes,
                superadmin=True,
                user="superadmin",
            )
        )
        key_scopes = frozenset(self.key_scopes)
        for role, secret in scope.keys.items():
            result.append(
                Caller(
                    f"{role}_api_key", "api_key", _bearer(secret), key_role=role, scopes=key_scopes
                )
            )
        result.append(
            Caller(
                "foreign_api_key",
                "api_key",
                _bearer(self.foreign_scope.keys[spec.API_KEY_ROLES[-1]]),
                key_role=None,
                scopes=key_scopes,
            )
        )
        owner = self.accounts["owner"]
        result.append(
            Caller(
                "owner_session",
                "session",
                self.csrf_headers(),
                {SESSION_COOKIE: owner.session},
                user="owner",
            )
        )
        resolved = [self.resolve_role(c, scope) for c in result]
        if set(scope.keys) == set(spec.API_KEY_ROLES):  # a scope of the world (not a stranger's)
            assert tuple(c.name for c in resolved) == CALLER_NAMES, [c.name for c in resolved]
        return resolved

    def resolve_role(self, caller: Caller, scope: Scope) -> Caller:
        if caller.kind == "api_key":
            return replace(caller, role=caller.key_role)
        if caller.user is None:
            return caller
        role = next((r for r, user in scope.members.items() if user == caller.user), None)
        account = self.accounts.get(caller.user)
        return replace(caller, role=role, superadmin=bool(account and account.superadmin))

    def session_caller(self, account: Account) -> Caller:
        return Caller(
            f"{account.name}_session",
            "session",
            self.csrf_headers(),
            {SESSION_COOKIE: account.session},
            user=account.name,
        )

    # ── requests built from the spec ──────────────────────────────────────────────────────────

    def producer_links(self, op: Operation, param: str) -> list[Link]:
        """Links that supply ``param`` to ``op`` (the operations that create its resource)."""
        return [
            link
            for link in self.doc.links()
            if link.target_id == op.operation_id and param in link.parameters
        ]

    def producer(self, op: Operation, param: str) -> tuple[str, str] | None:
        """The operation that makes a value for ``op``'s path parameter ``param`` and the
        runtime expression of the value in its answer: a link's, else the create of the
        resource the parameter's schema names (``x-gantry-resource``)."""
        links = self.producer_links(op, param)
        if links:
            return links[0].source_id, links[0].parameters[param]
        for p in op.parameters:
            if p.location == "path" and p.name == param:
                resource = self.doc.resource_of(p.schema)
                return self.creator_of(resource) if resource else None
        return None

    def request_for(self, op: Operation, caller: Caller) -> Request:
        """A request to ``op`` that the spec says succeeds for a caller with enough rights.

        Unsafe operations get fresh resources for the last path parameter (a fresh scope when it
        is the workspace), moved along their state machine to a state the operation accepts, and
        a session caller of an unsafe session-only operation without parameters (it acts on the
        caller: sign out, change password) gets a throwaway account, so no request damages what
        later requests rely on. A caller the spec refuses shares one such resource (one spare
        scope) per operation: its request must change nothing, and if it does, only that
        operation's later requests notice. Every resource is made in the request's scope: on a
        flat item path (``/notes/{note_id}``) the caller's role is the one in the workspace
        that owns it.
        """
        assert self.scope is not None
        unsafe = op.method in spec.UNSAFE
        params = spec.path_params(op)
        scope = self.scope
        served = spec.expected(op, self.resolve_role(caller, scope)).outcome == spec.PASS
        if unsafe and params and params[-1] == spec.WORKSPACE_PARAM:
            if served:
                scope = self.new_scope()
            else:
                scope = self._spare_scopes.get(op.operation_id) or self.new_scope()
                self._spare_scopes[op.operation_id] = scope
            caller = next(c for c in self.callers(scope) if c.name == caller.name)
        if unsafe and not params and op.min_role == "session" and caller.kind == "session":
            account = self.new_account("self", with_pat=False)
            caller = replace(self.session_caller(account), name=caller.name)
        return self.build_request(op, caller, scope, fresh_last=unsafe and served)

    def build_request(
        self, op: Operation, caller: Caller, scope: Scope, *, fresh_last: bool
    ) -> Request:
        caller = self.resolve_role(caller, scope)
        self.prepare(op, scope)
        params = spec.path_params(op)
        values: dict[str, Any] = {}
        for index, name in enumerate(params):
            if name == spec.WORKSPACE_PARAM:
                values[name] = scope.workspace_id
            else:
                fresh = fresh_last and index == len(params) - 1
                values[name] = self.resource_for(op, name, fresh=fresh, scope=scope)
        # The example request: required query parameters, and on an operation that is not a
        # list those that declare an example (a list's filters would hide what a walk must see).
        query = {
            p.name: _query_value(self.doc.parameter_example(op, p.name))
            for p in op.parameters
            if p.location == "query"
            and (p.required or (not spec.is_list(op) and self.doc.declares_example(op, p.name)))
        }
        return Request(
            op=op,
            caller=caller,
            path=values,
            query=query,
            body=self.body_for(op, scope),
            scope=scope,
            refusal=self.state_refusal(op),
        )

    def resource_for(self, op: Operation, param: str, *, fresh: bool, scope: Scope) -> Any:
        """A value for ``op``'s path parameter ``param``, made by the operation that produces it."""
        key = (op.operation_id, param, scope.workspace_id)
        if not fresh and key in self._cache:
            return self._cache[key]
        producer = self.producer(op, param)
        if producer is None:
            raise WorldError(
                f"{spec.label(op)}: nothing produces {param}: no link to it, and no operation "
                "creates the resource its schema names (x-gantry-resource); add a link"
            )
        made = self.call_as_allowed(spec.by_id(producer[0]), scope)
        value = evaluate(producer[1], made)
        if producer[1].startswith("$response.header."):
            self._settle(made, param, value, scope)
        self._ready_for(op, made, scope, {param: value})
        if not fresh:
            self._cache[key] = value
        return value

    def _settle(self, made: Made, param: str, value: Any, scope: Scope) -> None:
        """Wait until what an answer names only in a header (a cache entry, written once the
        answer is sent) can be read, through a read its producer links to; a few seconds at
        most, then the requests that use it say what they get."""
        producer = made.request.op.operation_id
        reads = [
            spec.by_id(link.target_id)
            for link in self.doc.links()
            if link.source_id == producer and param in link.parameters
        ]
        read = next((r for r in reads if r.method == "GET"), None)
        if read is None:
            return
        path = {n: made.request.path[n] for n in spec.path_params(read) if n in made.request.path}
        if spec.WORKSPACE_PARAM in spec.path_params(read):
            path.setdefault(spec.WORKSPACE_PARAM, scope.workspace_id)
        path[param] = value
        caller = self.resolve_role(self.allowed_caller(read, scope), scope)
        request = Request(op=read, caller=caller, path=path, query={}, body=None, scope=scope)
        for _ in range(SETTLE_TRIES):
            if self.send_request(request).status_code == 200:
                return
            time.sleep(SETTLE_PAUSE)

    def state_refusal(self, op: Operation) -> Refusal | None:
        """When ``op`` is a transition no operation of the spec can take a resource to a state
        of: the refusal it answers instead (its state machine's), and why."""
        for machine in rules.state_machines(self.doc):
            step = next((t for t in machine.transitions if t.operation_id == op.operation_id), None)
            if step is None or machine.initial in step.sources:
                continue
            if not any(state in machine.paths() for state in step.sources):
                return Refusal(
                    machine.refusal_status,
                    machine.refusal_code,
                    f"{spec.label(op)} accepts a {machine.schema} only in "
                    f"{machine.field}={'/'.join(step.sources)}, which no operation of the spec "
                    f"leads to (from {machine.initial}, {machine.schema}'s "
                    "x-gantry-state-machine)",
                )
        return None

    def _ready_for(self, op: Operation, made: Made, scope: Scope, named: Mapping[str, Any]) -> None:
        """Move a resource just made along its state machine to a state ``op`` accepts, when
        ``op`` is a transition its initial state does not allow (archiving a published note).
        ``named`` is what ``op``'s path calls the resource."""
        for machine in rules.state_machines(self.doc):
            step = next((t for t in machine.transitions if t.operation_id == op.operation_id), None)
            if step is None or machine.initial in step.sources:
                continue
            routes = machine.paths()
            reachable = [routes[state] for state in step.sources if state in routes]
            if not reachable:
                return  # left as made: ``state_refusal`` says what the operation answers
            producer = made.request.op.operation_id
            for move in min(reachable, key=len):
                mover = spec.by_id(move.operation_id)
                link = next(
                    (
                        link
                        for link in self.doc.links()
                        if link.source_id == producer and link.target_id == mover.operation_id
                    ),
                    None,
                )
                if link is not None:
                    path = {name: evaluate(expr, made) for name, expr in link.parameters.items()}
                else:
                    known = {**made.request.path, **named}
                    path = {n: known[n] for n in spec.path_params(mover) if n in known}
                if spec.WORKSPACE_PARAM in spec.path_params(mover):
                    path.setdefault(spec.WORKSPACE_PARAM, scope.workspace_id)
                request = Request(
                    op=mover,
                    caller=self.resolve_role(self.allowed_caller(mover, scope), scope),
                    path=path,
                    query={},
                    body=self.body_for(mover, scope) if mover.request_body is not None else None,
                    scope=scope,
                )
                self.call(request, f"to reach {move.to}")
            return

    def allowed_caller(self, op: Operation, scope: Scope) -> Caller:
        """The first world caller the spec lets call ``op`` (owner first, then the rest)."""
        preferred = ["owner_pat", "owner_session", "superadmin_pat"]
        candidates = self.callers(scope)
        ordered = sorted(
            candidates,
            key=lambda c: preferred.index(c.name) if c.name in preferred else len(preferred),
        )
        for caller in ordered:
            if spec.expected(op, caller).outcome == spec.PASS:
                return caller
        raise WorldError(f"{spec.label(op)}: no caller of the world may call it")

    def call_as_allowed(self, op: Operation, scope: Scope) -> Made:
        """Call ``op`` in ``scope`` as a caller it must serve; fail if it does not."""
        request = self.build_request(op, self.allowed_caller(op, scope), scope, fresh_last=False)
        return self.call(request, f"as {request.caller.name}")

    def call(self, request: Request, what: str) -> Made:
        """Send ``request``, which the spec says succeeds; fail if it does not."""
        response = self.send_request(request)
        if response.status_code not in spec.success_statuses(request.op):
            raise WorldError(
                f"{spec.label(request.op)} {what} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        return Made(request, response.json() if response.content else None, response.headers)

    def send_request(self, request: Request) -> requests.Response:
        """Send a ``Request`` as the suite builds them (its body in the operation's media type)."""
        body = request.body
        media_type = request.media_type()
        files = None
        if media_type == "multipart/form-data" and isinstance(body, Mapping):
            files = self.form_parts(request.op, body)
            body = None
        return self.send(
            request.op.method,
            request.url_path(),
            caller=request.caller,
            json=body,
            params=request.query or None,
            headers=request.headers(),
            files=files,
        )

    def form_parts(self, op: Operation, body: Mapping[str, Any]) -> list[tuple[str, Any]]:
        """A multipart body's parts: a file part for a property whose schema holds bytes
        (``contentMediaType``, ``format: binary``), a plain field for the rest."""
        properties = self.doc.request_schema(op).get("properties") or {}
        parts: list[tuple[str, Any]] = []
        for name, value in body.items():
            prop = self.doc.resolve(properties.get(name) or {})
            is_file = prop.get("format") == "binary" or "contentMediaType" in prop
            text = value if isinstance(value, str) else json.dumps(value)
            parts.append((name, (name if is_file else None, text.encode())))
        return parts

    # ── set-up steps (``x-gantry-given``) ─────────────────────────────────────────────────────

    def prepare(self, op: Operation, scope: Scope) -> None:
        """Make the requests ``op`` declares it needs first (``x-gantry-given``), once per
        workspace: what makes its success possible (a route for the gateway to call)."""
        steps = self.given.get(op.operation_id)
        key = (op.operation_id, scope.workspace_id)
        if not steps or key in self._prepared:
            return
        self._prepared.add(key)
        self.run_given(steps, scope, {}, f"{spec.label(op)}'s set-up")

    def run_given(
        self, steps: tuple[rules.Given, ...], scope: Scope, path: Mapping[str, Any], what: str
    ) -> list[Made]:
        """Send each set-up step in ``scope`` as a caller it must serve. Its body is the
        operation's own (``body_for``) with the step's fields in place of the example's; in the
        step's values ``$request.path.<name>`` is ``path``'s (the request the steps prepare)
        and ``$response…`` the answer to the step before. A path parameter the step does not
        give is the same-named one of ``path``, else a resource made for it."""
        done: list[Made] = []
        for number, step in enumerate(steps, 1):
            op = spec.by_id(step.operation_id)
            previous = done[-1] if done else None
            params = spec.path_params(op)
            values = {n: path[n] for n in params if n in path}
            values.update(_given_values(step.path, path, previous))
            for name in params:
                if name == spec.WORKSPACE_PARAM:
                    values.setdefault(name, scope.workspace_id)
                elif name not in values:
                    values[name] = self.resource_for(op, name, fresh=False, scope=scope)
            body = self.body_for(op, scope) if op.request_body is not None else None
            if step.body:
                body = {**(body or {}), **_given_values(step.body, path, previous)}
            request = Request(
                op=op,
                caller=self.resolve_role(self.allowed_caller(op, scope), scope),
                path=values,
                query=dict(_given_values(step.query, path, previous)),
                body=body,
                scope=scope,
            )
            done.append(self.call(request, f"(step {number} of {what})"))
        return done

    # ── values of the spec's types ────────────────────────────────────────────────────────────

    def reference(self, resource: str, scope: Scope) -> Any:
        """The id of a ``resource`` made in ``scope`` by the operation that creates it (one
        per workspace, made on first use)."""
        key = (resource, scope.workspace_id)
        if key not in self._references:
            creator = self.creator_of(resource)
            if creator is None:
                raise WorldError(f"no operation of the spec creates a {resource}")
            if key in self._making:
                raise WorldError(f"making a {resource} needs a {resource} already")
            self._making.add(key)
            try:
                made = self.call_as_allowed(spec.by_id(creator[0]), scope)
            finally:
                self._making.discard(key)
            self._references[key] = evaluate(creator[1], made)
        return self._references[key]

    def creator_of(self, resource: str) -> tuple[str, str] | None:
        """``Document.creator_of``, looked up once per resource."""
        if resource not in self._creators:
            self._creators[resource] = self.doc.creator_of(resource)
        return self._creators[resource]

    def with_references(self, value: Any, schema: Any, scope: Scope) -> Any:
        """``value`` with every id of a resource the spec can create (a string whose schema
        names it, ``x-gantry-resource``, at any depth) replaced by one made in ``scope``."""
        resource = self.doc.named_resource(schema) if schema is not None else None
        if resource is not None and isinstance(value, str) and self.creator_of(resource):
            return self.reference(resource, scope)
        if isinstance(value, Mapping):
            properties = self._properties(schema)
            return {k: self.with_references(v, properties.get(k), scope) for k, v in value.items()}
        if isinstance(value, list):
            items = self._items(schema)
            return [self.with_references(v, items, scope) for v in value]
        return value

    def _branches(self, schema: Any) -> list[Mapping[str, Any]]:
        """The object schemas a value of ``schema`` may follow (``allOf`` parts, ``anyOf`` and
        ``oneOf`` branches), resolved."""
        schema = self.doc.resolve(schema)
        if not isinstance(schema, Mapping):
            return []
        found = [schema]
        for key in ("allOf", "anyOf", "oneOf"):
            for part in schema.get(key) or ():
                found.extend(self._branches(part))
        return found

    def _properties(self, schema: Any) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for branch in self._branches(schema):
            for name, prop in (branch.get("properties") or {}).items():
                properties.setdefault(str(name), prop)
        return properties

    def _items(self, schema: Any) -> Any:
        return next((b["items"] for b in self._branches(schema) if "items" in b), None)

    def realize(self, op_label: str, body: Any) -> Any:
        """A generated ``body`` adjusted so a second send of it means the same thing.

        Valid ``Email`` and ``Slug`` values are made unique, so a create that Hypothesis replays
        creates again instead of answering 409. In operations under a workspace, about half of
        the ``UserId``/``Email`` values (chosen by the value, so a replay chooses the same) are
        replaced by a fresh real user, or adding members would only ever answer 404.
        """
        op = spec.by_label(op_label)
        if op is None or not isinstance(body, dict):
            return body
        in_workspace = spec.in_workspace(op)
        body = dict(body)  # never the generator's own object: an example it serves again
        for name, value in list(body.items()):
            kind = self.doc.property_ref(op, name)
            if not isinstance(value, str):
                continue
            if in_workspace and kind in ("Email", "UserId") and _stable_coin(value):
                user_id, email = self.new_user("engine-invitee")
                body[name] = email if kind == "Email" else user_id
                continue
            tag = f"{self.run}{next(self._counter)}"
            if kind == "Email" and "@" in value and not value.startswith('"'):
                local, _, domain = value.rpartition("@")
                room = min(63 - len(tag), 253 - len(tag) - len(domain) - 1)
                if room > 0:
                    body[name] = f"{local[:room]}+{tag}@{domain}"
            elif kind == "Slug" and _SLUG.fullmatch(value):
                body[name] = (value[: 40 - len(tag) - 1] + "-" + tag).lower()
        return body

    def body_for(self, op: Operation, scope: Scope) -> Any:
        """The operation's example body, adjusted by property type (see the module docstring),
        every id of a resource in it (``x-gantry-resource``, nested ones too) one of ``scope``."""
        example = self.doc.request_example(op)
        if not isinstance(example, Mapping):
            return example
        body = dict(example)
        in_workspace = spec.in_workspace(op)
        creates = self._creates(op)
        referenced_user: tuple[str, str] | None = None
        for name, value in example.items():
            kind = self.doc.property_ref(op, name)
            if in_workspace and kind in ("Email", "UserId"):
                referenced_user = referenced_user or self.new_user("invitee")
                body[name] = referenced_user[1] if kind == "Email" else referenced_user[0]
            elif creates and kind == "Email":
                body[name] = self.unique_email(str(value).split("@")[0])
            elif creates and kind == "Slug":
                tag = f"{self.run}-{next(self._counter)}"
                body[name] = f"{str(value)[: 40 - len(tag) - 1]}-{tag}".lower()
            elif kind == "Timestamp":
                # Request timestamps are expiries; an example's fixed date would age out of
                # the allowed window, so it is moved to a month from now.
                body[name] = _in_a_month()
        return self.with_references(body, self.doc.request_schema(op), scope)


def _in_a_month() -> str:
    return (datetime.now(UTC) + timedelta(days=30)).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Refusal:
    """What a request is answered instead of a success, when the spec makes success out of
    reach here, and why."""

    status: int
    code: str
    why: str


@dataclass
class Request:
    """A concrete request to one operation: who sends it, and with which values."""

    op: Operation
    caller: Caller
    path: dict[str, Any]
    query: dict[str, Any]
    body: Any
    scope: Scope
    refusal: Refusal | None = None  # a success is out of reach: this is the answer instead
    extra_headers: dict[str, str] = field(default_factory=dict)

    def url_path(self) -> str:
        path = spec.spec_path(self.op)
        for name, value in self.path.items():
            path = path.replace("{" + name + "}", str(value))
        return path

    def headers(self) -> dict[str, str]:
        """Header parameters the request fills itself: the header that names the workspace the
        request acts in (the scope's; an API key's own may be named, another's not)."""
        name = spec.api().document.workspace_header(self.op)
        own = {name: self.scope.workspace_id} if name else {}
        return {**own, **self.extra_headers}

    def media_type(self) -> str | None:
        if self.op.request_body is None:
            return None
        return spec.api().document.body_media_type(spec.api().document.operation(self.op))


@dataclass
class Made:
    request: Request
    body: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def evaluate(expression: str, made: Made) -> Any:
    """A runtime expression of an OpenAPI link against the producing request and response."""
    if expression.startswith("$response.body#"):
        node: Any = made.body
        for part in expression.split("#", 1)[1].strip("/").split("/"):
            if part:
                node = node[int(part)] if isinstance(node, list) else node[part]
        return node
    if expression.startswith("$response.header."):
        name = expression.split(".", 2)[2].lower()
        found = next((v for k, v in made.headers.items() if k.lower() == name), None)
        if found is None:
            raise WorldError(f"{expression}: the answer has no such header")
        return found
    if expression.startswith("$request.path."):
        return made.request.path[expression.rsplit(".", 1)[-1]]
    if expression.startswith("$request.query."):
        return made.request.query[expression.rsplit(".", 1)[-1]]
    raise WorldError(f"unsupported link expression {expression!r}")


def _given_values(node: Any, path: Mapping[str, Any], previous: Made | None) -> Any:
    """A set-up step's declared values with their expressions evaluated (``run_given``)."""
    if isinstance(node, Mapping):
        return {k: _given_values(v, path, previous) for k, v in node.items()}
    if isinstance(node, list):
        return [_given_values(v, path, previous) for v in node]
    if isinstance(node, str) and node.startswith("$request.path."):
        name = node.removeprefix("$request.path.")
        if name not in path:
            raise WorldError(f"{node}: the request the steps prepare has no path parameter {name}")
        return path[name]
    if isinstance(node, str) and node.startswith("$response."):
        if previous is None:
            raise WorldError(f"{node}: the first set-up step has no answer before it")
        return evaluate(node, previous)
    return node


def _query_value(value: Any) -> Any:
    """A query parameter's value as the URL spells it (a boolean is ``true``/``false``)."""
    return json.dumps(value) if isinstance(value, bool) else value


def _stable_coin(value: str) -> bool:
    return zlib.crc32(value.encode("utf-8", "surrogatepass")) % 2 == 0


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
