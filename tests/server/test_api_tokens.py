"""tokens: personal access tokens — create, list, rename, revoke, lifetime bounds, ownership,
and the scope cap on workspace roles."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.storage.models import AuditEvent


def _create(account: Any, **overrides: Any) -> Any:
    body = {
        "name": "ci-deploy",
        "scopes": ["read", "run"],
        "expires_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
    }
    body.update(overrides)
    return account.session.post("/tokens", json=body)


def test_create_shows_the_secret_once(gantry: Any) -> None:
    account = gantry.user()
    response = _create(account)
    assert response.status_code == 201
    body = response.json
    assert re.fullmatch(r"pat_[0-9A-Za-z]{40}", body["token"])
    assert body["prefix"] == body["token"][:8]
    assert body["status"] == "active"
    assert body["scopes"] == ["read", "run"]
    assert body["last_used_at"] is None
    assert response.headers["Location"] == f"/api/v1/tokens/{body['id']}"

    listed = account.session.get("/tokens", expect=200).json["items"]
    assert [t["id"] for t in listed] == [body["id"]]
    assert "token" not in listed[0]
    assert body["token"] not in account.session.get("/tokens").get_data(as_text=True)


def test_token_authenticates_and_records_use(gantry: Any) -> None:
    account = gantry.user()
    secret = _create(account).json["token"]
    me = gantry.bearer(secret).get("/auth/me", expect=200).json
    assert me["user"]["id"] == account.id
    listed = account.session.get("/tokens", expect=200).json["items"]
    assert listed[0]["last_used_at"] is not None


def test_create_records_pat_created_without_the_secret(gantry: Any) -> None:
    account = gantry.user()
    body = _create(account).json
    with gantry.db() as db:
        event = db.query(AuditEvent).filter(AuditEvent.target_id == body["id"]).one()
        assert event.action == "pat.created"
        assert event.workspace_id is None
        assert event.actor_id == account.id
        assert body["token"] not in str(event.metadata_) + event.summary


@pytest.mark.parametrize(
    "delta",
    [timedelta(hours=12), timedelta(days=-1), timedelta(days=367), timedelta(days=800)],
)
def test_expiry_must_be_between_a_day_and_a_year(gantry: Any, delta: timedelta) -> None:
    account = gantry.user()
    before = gantry.counts()
    response = _create(account, expires_at=(datetime.now(UTC) + delta).isoformat())
    assert response.status_code == 400
    assert response.json["code"] == "validation_failed"
    assert [e["field"] for e in response.json["errors"]] == ["body.expires_at"]
    assert gantry.counts() == before


@pytest.mark.parametrize("delta", [timedelta(days=1, minutes=1), timedelta(days=364)])
def test_expiry_inside_the_bounds(gantry: Any, delta: timedelta) -> None:
    account = gantry.user()
    assert _create(account, expires_at=(datetime.now(UTC) + delta).isoformat()).status_code == 201


def test_create_validates_scopes(gantry: Any) -> None:
    account = gantry.user()
    for scopes in ([], ["read", "read"], ["sdk"], ["nope"]):
        response = _create(account, scopes=scopes)
        assert response.status_code == 400, scopes
        assert response.json["code"] == "validation_failed"


def test_tokens_are_session_only(gantry: Any) -> None:
    account = gantry.user()
    secret = _create(account).json["token"]
    pat = gantry.bearer(secret)
    pat.get("/tokens", expect=403, code="session_required")
    pat.post(
        "/tokens",
        json={"name": "x", "scopes": ["read"], "expires_at": gantry.stamp(timedelta(days=2))},
        expect=403,
        code="session_required",
    )


def test_rename(gantry: Any) -> None:
    account = gantry.user()
    created = _create(account).json
    renamed = account.session.patch(
        f"/tokens/{created['id']}", json={"name": "ci-deploy (production)"}, expect=200
    ).json
    assert renamed["name"] == "ci-deploy (production)"
    assert renamed["id"] == created["id"]
    assert "token" not in renamed
    account.session.patch(f"/tokens/{created['id']}", json={}, expect=400)


def test_revoke_is_permanent_and_a_second_revoke_is_404(gantry: Any) -> None:
    account = gantry.user()
    created = _create(account).json
    account.session.delete(f"/tokens/{created['id']}", expect=204)
    account.session.delete(f"/tokens/{created['id']}", expect=404, code="not_found")
    account.session.patch(f"/tokens/{created['id']}", json={"name": "x"}, expect=404)
    gantry.bearer(created["token"]).get("/auth/me", expect=401, code="token_revoked")
    listed = account.session.get("/tokens", expect=200).json["items"]
    assert listed[0]["status"] == "revoked"
    with gantry.db() as db:
        actions = [
            e.action for e in db.query(AuditEvent).filter(AuditEvent.target_id == created["id"])
        ]
    assert sorted(actions) == ["pat.created", "pat.revoked"]


def test_another_users_token_is_404(gantry: Any) -> None:
    alice = gantry.user("alice")
    bob = gantry.user("bob")
    token = _create(alice).json
    bob.session.patch(f"/tokens/{token['id']}", json={"name": "mine"}, expect=404)
    bob.session.delete(f"/tokens/{token['id']}", expect=404)
    assert bob.session.get("/tokens", expect=200).json["items"] == []
    gantry.bearer(token["token"]).get("/auth/me", expect=200)


def test_unknown_token_id_is_404_and_malformed_is_400(gantry: Any) -> None:
    account = gantry.user()
    account.session.delete("/tokens/tok_" + "A" * 24, expect=404)
    account.session.delete("/tokens/not-an-id", expect=400, code="validation_failed")


def test_list_filters_by_status_and_paginates(gantry: Any) -> None:
    account = gantry.user()
    ids = [_create(account, name=f"t{i}").json["id"] for i in range(12)]
    for token_id in ids[:3]:
        account.session.delete(f"/tokens/{token_id}", expect=204)
    items = gantry.walk(account.session, "/tokens", limit=5)
    assert [t["id"] for t in items] == ids[::-1]
    active = gantry.walk(account.session, "/tokens", limit=4, status="active", order="asc")
    assert [t["id"] for t in active] == ids[3:]
    page = account.session.get(
        "/tokens", query={"status": "revoked", "include_total": True, "limit": 1}, expect=200
    ).json
    assert page["total"] == 3
    assert len(page["items"]) == 1


# ── the scope cap ───────────────────────────────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("scopes", "role"),
    [(["read"], "viewer"), (["run"], "operator"), (["write"], "editor"), (["admin"], "owner")],
)
def test_scopes_cap_the_role(gantry: Any, scopes: list[str], role: str) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    secret = _create(owner, scopes=scopes).json["token"]
    assert gantry.bearer(secret).get(f"/workspaces/{ws['id']}", expect=200).json["role"] == role


def test_read_scope_cannot_write(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    pat = gantry.bearer(_create(owner, scopes=["read"]).json["token"])
    pat.get(f"/workspaces/{ws['id']}/members", expect=200)
    pat.patch(f"/workspaces/{ws['id']}", json={"name": "X"}, expect=403, code="scope_denied")
    pat.post(
        f"/workspaces/{ws['id']}/api-keys", json={"name": "k"}, expect=403, code="scope_denied"
    )


def test_gateway_only_token_has_no_workspace_role(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    pat = gantry.bearer(_create(owner, scopes=["gateway"]).json["token"])
    pat.get(f"/workspaces/{ws['id']}", expect=403, code="scope_denied")
    # Gateway calls only: not even the instance-level reads.
    pat.get("/auth/me", expect=403, code="scope_denied")


def test_scope_never_raises_the_member_role(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    viewer = gantry.member(ws["id"], owner, "viewer")
    pat = gantry.bearer(_create(viewer, scopes=["admin"]).json["token"])
    assert pat.get(f"/workspaces/{ws['id']}", expect=200).json["role"] == "viewer"
    pat.patch(f"/workspaces/{ws['id']}", json={"name": "X"}, expect=403, code="insufficient_role")


def test_superadmin_pat_needs_the_admin_scope(gantry: Any) -> None:
    account = gantry.user("root")
    gantry.admin.patch(f"/admin/users/{account.id}", json={"is_superadmin": True}, expect=200)
    read_only = gantry.bearer(gantry.pat(account, ("read", "run", "write")))
    read_only.get("/admin/users", expect=403, code="scope_denied")
    gantry.bearer(gantry.pat(account, ("admin",))).get("/admin/users", expect=200)
    account.session.get("/admin/users", expect=200)
