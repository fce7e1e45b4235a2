"""auth: credentials (missing, malformed, unknown, expired, revoked), CSRF, register, login,
logout, the current identity and updating it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from generated import models
from server.domain import auth
from server.domain.actors import Principal
from server.domain.errors import Invalid
from server.domain.unit import unit_of_work
from server.storage.models import ApiKey, AuditEvent, PersonalAccessToken, UserSession
from tests.conftest import native_error_operations

NATIVE_ERRORS = native_error_operations()


def _secured(gantry: Any) -> list[Any]:
    ops = [op for op in gantry.operations() if op.security and () not in op.security]
    assert len(ops) >= 25  # the table, not a hand-written list
    return ops


# ── no credential, bad credentials ──────────────────────────────────────────────────────────


def test_every_secured_operation_needs_a_credential(gantry: Any) -> None:
    for op in _secured(gantry):
        # Required query parameters get a valid value, so only the credential is missing.
        query = {
            p.name: "someone@example.com" if p.name == "email" else "x"
            for p in op.parameters
            if p.location == "query" and p.required
        }
        response = gantry.anon.request(op.method, gantry.concrete_path(op), query=query, expect=401)
        if op.operation_id in NATIVE_ERRORS:  # the gateway's own envelope, checked by the spec
            continue
        assert response.json["code"] == "unauthenticated", op.operation_id
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="gantry"', op.operation_id


def test_public_operations_need_none(gantry: Any) -> None:
    public = [op for op in gantry.operations() if not op.security]
    assert {op.operation_id for op in public} >= {"getHealth", "login", "register"}
    for op in public:
        if op.method == "GET":
            gantry.anon.get(op.path, expect=200)


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer    ",
        "Bearer nonsense",
        "Bearer pat_" + "x" * 40,
        "Bearer sk_" + "x" * 40,
        "Token pat_" + "x" * 40,
    ],
)
def test_malformed_or_unknown_bearer_is_401(gantry: Any, authorization: str) -> None:
    response = gantry.anon.get(
        "/auth/me", headers={"Authorization": authorization}, expect=401, code="unauthenticated"
    )
    assert "WWW-Authenticate" in response.headers


def test_unknown_session_cookie_is_401(gantry: Any) -> None:
    client = gantry.cookie_client()
    client.client.set_cookie("session", "ses_" + "z" * 40)
    client.get("/auth/me", expect=401, code="unauthenticated")


def test_expired_and_revoked_tokens(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    expired_pat = gantry.pat(owner, name="expired")
    revoked_pat = gantry.pat(owner, name="revoked")
    expired_key = gantry.api_key(ws["id"], owner, name="expired")
    revoked_key = gantry.api_key(ws["id"], owner, name="revoked")
    past = datetime.now(UTC) - timedelta(minutes=1)
    with gantry.db() as db:
        db.execute(
            update(PersonalAccessToken)
            .where(PersonalAccessToken.prefix == expired_pat[:8])
            .values(expires_at=past)
        )
        db.execute(update(ApiKey).where(ApiKey.id == expired_key["id"]).values(expires_at=past))
    tokens = owner.session.get("/tokens", query={"status": "active"}, expect=200).json["items"]
    revoked_id = next(t["id"] for t in tokens if t["name"] == "revoked")
    owner.session.delete(f"/tokens/{revoked_id}", expect=204)
    owner.session.delete(f"/workspaces/{ws['id']}/api-keys/{revoked_key['id']}", expect=204)

    gantry.bearer(expired_pat).get("/auth/me", expect=401, code="token_expired")
    gantry.bearer(revoked_pat).get("/auth/me", expect=401, code="token_revoked")
    gantry.bearer(expired_key["key"]).get("/auth/me", expect=401, code="token_expired")
    gantry.bearer(revoked_key["key"]).get("/auth/me", expect=401, code="token_revoked")


def test_expired_session_is_401(gantry: Any) -> None:
    account = gantry.user()
    with gantry.db() as db:
        db.execute(
            update(UserSession)
            .where(UserSession.user_id == account.id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    account.session.get("/auth/me", expect=401, code="token_expired")


# ── CSRF ────────────────────────────────────────────────────────────────────────────────────


def test_cookie_writes_need_the_csrf_headers(gantry: Any) -> None:
    account = gantry.user()
    body = {"name": "Acme", "slug": "acme"}
    account.session.post("/workspaces", json=body, csrf=False, expect=403, code="csrf_failed")
    account.session.post(
        "/workspaces",
        json=body,
        csrf=False,
        headers={"X-Requested-With": "XMLHttpRequest"},
        expect=403,
        code="csrf_failed",
    )
    account.session.post(
        "/workspaces",
        json=body,
        csrf=False,
        headers={"X-Requested-With": "XMLHttpRequest", "Origin": "https://evil.example"},
        expect=403,
        code="csrf_failed",
    )
    account.session.post(
        "/workspaces",
        json=body,
        csrf=False,
        headers={"Origin": "http://localhost"},
        expect=403,
        code="csrf_failed",
    )
    # Nothing was created by the refused writes.
    assert account.session.get("/workspaces", expect=200).json["items"] == []
    account.session.post("/workspaces", json=body, expect=201)


def test_cookie_reads_and_bearer_writes_need_no_csrf_headers(gantry: Any) -> None:
    account = gantry.user()
    account.session.get("/auth/me", csrf=False, expect=200)
    token = gantry.pat(account)
    gantry.bearer(token).post("/workspaces", json={"name": "B", "slug": "bearer-ws"}, expect=201)


def test_configured_origins_pass_the_csrf_check(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(csrf_origins=frozenset({"https://app.example"})))
    account = g.user()
    account.session.post(
        "/workspaces",
        json={"name": "X", "slug": "x-origin"},
        headers={"Origin": "https://app.example"},
        expect=201,
    )


# ── register ────────────────────────────────────────────────────────────────────────────────


def test_register_signs_in(gantry: Any) -> None:
    client = gantry.cookie_client()
    response = client.post(
        "/auth/register",
        json={"email": "Ada@Example.com", "name": "Ada Lovelace", "password": "correct-horse-1"},
        expect=201,
    )
    body = response.json
    assert body["email"] == "ada@example.com"
    assert body["is_superadmin"] is False  # the bootstrap admin exists
    assert body["status"] == "active"
    assert response.headers["Location"] == "/api/v1/auth/me"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=")
    for attribute in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=604800"):
        assert attribute in cookie
    assert "Secure" not in cookie
    me = client.get("/auth/me", expect=200).json
    assert me["user"]["id"] == body["id"]
    assert me["credential"] == {"kind": "session", "id": None, "scopes": [], "workspace_id": None}


def test_register_duplicate_email_is_409(gantry: Any) -> None:
    account = gantry.user()
    before = gantry.counts()
    gantry.anon.post(
        "/auth/register",
        json={"email": account.email.upper(), "name": "Again", "password": "another-password"},
        expect=409,
        code="already_exists",
    )
    assert gantry.counts() == before


def test_register_records_user_created(gantry: Any) -> None:
    account = gantry.user()
    with gantry.db() as db:
        event = db.query(AuditEvent).filter(AuditEvent.target_id == account.id).one()
    assert event.action == "user.created"
    assert event.workspace_id is None
    assert "password" not in str(event.metadata_)


def test_register_validates_the_body(gantry: Any) -> None:
    response = gantry.anon.post(
        "/auth/register",
        json={"email": "not-an-email", "name": "", "password": "short"},
        expect=400,
        code="validation_failed",
    )
    fields = {e["field"] for e in response.json["errors"]}
    assert fields & {"body.email", "body.name", "body.password"}


def test_registration_can_be_disabled(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(registration_enabled=False))
    before = g.counts()
    g.anon.post(
        "/auth/register",
        json={"email": "x@example.com", "name": "X", "password": "long-enough"},
        expect=403,
        code="forbidden",
    )
    assert g.counts() == before


def test_first_user_becomes_superadmin(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(bootstrap_token=None))
    first = g.user()
    second = g.user()
    assert first.body["is_superadmin"] is True
    assert second.body["is_superadmin"] is False
    first.session.get("/admin/users", expect=200)
    second.session.get("/admin/users", expect=403, code="forbidden")


def test_secure_cookie_on_https_deployments(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(secure_cookies=True))
    response = g.anon.post(
        "/auth/register",
        json={"email": "s@example.com", "name": "S", "password": "long-enough"},
        expect=201,
    )
    assert "Secure" in response.headers["Set-Cookie"]


# ── login and logout ────────────────────────────────────────────────────────────────────────


def test_login_sets_a_session(gantry: Any) -> None:
    account = gantry.user()
    client = gantry.cookie_client()
    response = client.post(
        "/auth/login", json={"email": account.email.upper(), "password": account.password}
    )
    assert response.status_code == 200
    assert response.json["id"] == account.id
    assert "HttpOnly" in response.headers["Set-Cookie"]
    assert client.get("/auth/me", expect=200).json["user"]["id"] == account.id


@pytest.mark.parametrize("case", ["wrong password", "unknown email", "blocked"])
def test_login_failures_are_invalid_credentials(gantry: Any, case: str) -> None:
    account = gantry.user()
    email, password = account.email, account.password
    if case == "wrong password":
        password = "not-the-password"
    elif case == "unknown email":
        email = "nobody@example.com"
    else:
        gantry.admin.patch(f"/admin/users/{account.id}", json={"status": "blocked"}, expect=200)
    response = gantry.cookie_client().post(
        "/auth/login",
        json={"email": email, "password": password},
        expect=401,
        code="invalid_credentials",
    )
    assert "WWW-Authenticate" in response.headers
    assert "Set-Cookie" not in response.headers


def test_login_is_rate_limited_per_ip(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(login_rate_per_minute=3))
    body = {"email": "nobody@example.com", "password": "whatever"}
    for _ in range(3):
        g.anon.post("/auth/login", json=body, expect=401)
    response = g.anon.post("/auth/login", json=body, expect=429, code="rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # Another address has its own budget.
    g.anon.post("/auth/login", json=body, remote_addr="10.0.0.9", expect=401)


def test_register_shares_the_per_ip_auth_limit(make_app: Any, gantry_for: Any) -> None:
    g = gantry_for(make_app(login_rate_per_minute=2))
    for i in range(2):
        g.anon.post(
            "/auth/register",
            json={"email": f"r{i}@example.com", "name": "R", "password": "long-enough"},
            expect=201,
        )
    before = g.counts()
    response = g.anon.post(
        "/auth/register",
        json={"email": "r9@example.com", "name": "R", "password": "long-enough"},
        expect=429,
        code="rate_limited",
    )
    assert "Retry-After" in response.headers
    assert g.counts() == before


def test_logout_ends_the_session(gantry: Any) -> None:
    account = gantry.user()
    other_session = gantry.login(account)
    response = account.session.post("/auth/logout", expect=204)
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("session=;") or cookie.startswith('session="";')
    assert "Max-Age=0" in cookie
    account.session.get("/auth/me", expect=401)
    other_session.get("/auth/me", expect=200)  # other sessions stay


def test_logout_with_a_bearer_is_session_required(gantry: Any) -> None:
    account = gantry.user()
    gantry.bearer(gantry.pat(account)).post("/auth/logout", expect=403, code="session_required")


def test_logged_out_cookie_replayed_is_401(gantry: Any) -> None:
    account = gantry.user()
    value = account.session.client.get_cookie("session").value
    account.session.post("/auth/logout", expect=204)
    replay = gantry.cookie_client()
    replay.client.set_cookie("session", value)
    replay.get("/auth/me", expect=401, code="unauthenticated")


# ── me ──────────────────────────────────────────────────────────────────────────────────────


def test_me_lists_memberships(gantry: Any) -> None:
    owner = gantry.user()
    ws1 = gantry.workspace(owner)
    ws2 = gantry.workspace(owner)
    viewer = gantry.member(ws1["id"], owner, "viewer")
    me = owner.session.get("/auth/me", expect=200).json
    assert {(m["workspace_id"], m["role"]) for m in me["memberships"]} == {
        (ws1["id"], "owner"),
        (ws2["id"], "owner"),
    }
    me = viewer.session.get("/auth/me", expect=200).json
    assert me["memberships"] == [
        {"workspace_id": ws1["id"], "workspace_name": ws1["name"], "role": "viewer"}
    ]


def test_me_with_a_pat(gantry: Any) -> None:
    account = gantry.user()
    token = gantry.pat(account, ("read", "gateway"))
    me = gantry.bearer(token).get("/auth/me", expect=200).json
    assert me["user"]["id"] == account.id
    credential = me["credential"]
    assert credential["kind"] == "pat"
    assert credential["id"].startswith("tok_")
    assert credential["scopes"] == ["gateway", "read"]
    assert credential["workspace_id"] is None


def test_me_with_an_api_key(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner, role="editor", scopes=("sdk",))
    me = gantry.bearer(key["key"]).get("/auth/me", expect=200).json
    assert me == {
        "user": None,
        "memberships": [{"workspace_id": ws["id"], "workspace_name": ws["name"], "role": "editor"}],
        "memberships_truncated": False,
        "credential": {
            "kind": "api_key",
            "id": key["id"],
            "scopes": ["sdk"],
            "workspace_id": ws["id"],
        },
    }


def test_update_me_name(gantry: Any) -> None:
    account = gantry.user()
    body = account.session.patch("/auth/me", json={"name": "Ada King"}, expect=200).json
    assert body["name"] == "Ada King"
    assert body["updated_at"] >= account.body["updated_at"]
    assert account.session.get("/auth/me", expect=200).json["user"]["name"] == "Ada King"


def test_update_me_password(gantry: Any) -> None:
    account = gantry.user()
    other_session = gantry.login(account)
    account.session.patch(
        "/auth/me",
        json={"password": "analytical-engine-1843", "current_password": account.password},
        expect=200,
    )
    other_session.get("/auth/me", expect=401)  # other sessions end
    account.session.get("/auth/me", expect=200)  # the one that made the change stays
    fresh = gantry.cookie_client()
    fresh.post(
        "/auth/login",
        json={"email": account.email, "password": account.password},
        expect=401,
        code="invalid_credentials",
    )
    fresh.post(
        "/auth/login",
        json={"email": account.email, "password": "analytical-engine-1843"},
        expect=200,
    )


def test_update_me_password_needs_the_current_one(gantry: Any) -> None:
    account = gantry.user()
    account.session.patch(
        "/auth/me",
        json={"password": "analytical-engine-1843"},
        expect=400,
        code="validation_failed",
    )
    account.session.patch("/auth/me", json={"current_password": account.password}, expect=400)
    before = gantry.counts()
    account.session.patch(
        "/auth/me",
        json={"name": "Changed", "password": "analytical-engine-1843", "current_password": "nope"},
        expect=403,
        code="invalid_credentials",
    )
    assert gantry.counts() == before
    assert account.session.get("/auth/me", expect=200).json["user"]["name"] == account.name


def test_a_password_change_needs_both_passwords_without_the_schema(gantry: Any, app: Any) -> None:
    # Through HTTP the schema's dependentRequired refuses the pair first, so the rule is
    # exercised on the domain function with a request the schema never saw.
    account = gantry.user()
    state = app.extensions["gantry"]
    actor = Principal(
        kind="session", credential_id="ses_x", label=account.email, user_id=account.id
    )
    before = gantry.counts()
    for sent in ({"password": "analytical-engine-1843"}, {"current_password": account.password}):
        request = models.MeUpdate.model_validate(sent)
        with (
            pytest.raises(Invalid) as caught,
            unit_of_work(state.database.sessionmaker, actor) as uow,
        ):
            auth.update_me(uow, request)
        missing = "current_password" if "password" in sent else "password"
        assert caught.value.errors == ((f"body.{missing}", "is required"),)
    assert gantry.counts() == before
    gantry.cookie_client().post(
        "/auth/login", json={"email": account.email, "password": account.password}, expect=200
    )


def test_update_me_rejects_empty_and_unknown_fields(gantry: Any) -> None:
    account = gantry.user()
    account.session.patch("/auth/me", json={}, expect=400, code="validation_failed")
    account.session.patch("/auth/me", json={"email": "x@example.com"}, expect=400)
    account.session.patch("/auth/me", json={"name": None}, expect=400)


def test_update_me_needs_the_session(gantry: Any) -> None:
    account = gantry.user()
    gantry.bearer(gantry.pat(account)).patch(
        "/auth/me", json={"name": "X"}, expect=403, code="session_required"
    )


def test_blocked_users_credentials_stop_working(gantry: Any) -> None:
    account = gantry.user()
    token = gantry.pat(account)
    gantry.admin.patch(f"/admin/users/{account.id}", json={"status": "blocked"}, expect=200)
    account.session.get("/auth/me", expect=401)
    gantry.bearer(token).get("/auth/me", expect=401)
    gantry.admin.patch(f"/admin/users/{account.id}", json={"status": "active"}, expect=200)
    gantry.bearer(token).get("/auth/me", expect=200)
    account.session.get("/auth/me", expect=401)  # blocking ended the sessions for good
