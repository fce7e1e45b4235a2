"""users: lookup, and instance user administration by superadmins."""

from __future__ import annotations

from typing import Any

import pytest

from server.storage.models import AuditEvent, User


def _create(gantry: Any, email: str, **extra: Any) -> Any:
    body = {"email": email, "name": "Grace Hopper", "password": "cobol-compiler-1959", **extra}
    return gantry.admin.post("/admin/users", json=body)


# ── lookup ──────────────────────────────────────────────────────────────────────────────────


def test_lookup_by_email(gantry: Any) -> None:
    grace = gantry.user("grace")
    asker = gantry.user()
    body = asker.session.get("/users/lookup", query={"email": grace.email.upper()}, expect=200).json
    assert body == {"id": grace.id, "name": grace.name}
    pat = gantry.bearer(gantry.pat(asker, ("read",)))
    assert pat.get("/users/lookup", query={"email": grace.email}, expect=200).json["id"] == grace.id


def test_lookup_unknown_or_blocked_is_404(gantry: Any) -> None:
    grace = gantry.user("grace")
    asker = gantry.user()
    asker.session.get("/users/lookup", query={"email": "nobody@example.com"}, expect=404)
    gantry.admin.patch(f"/admin/users/{grace.id}", json={"status": "blocked"}, expect=200)
    asker.session.get("/users/lookup", query={"email": grace.email}, expect=404, code="not_found")


def test_lookup_validates_the_email(gantry: Any) -> None:
    asker = gantry.user()
    asker.session.get("/users/lookup", expect=400, code="validation_failed")
    asker.session.get("/users/lookup", query={"email": "a@example.com", "extra": "1"}, expect=400)


# ── who may administer ──────────────────────────────────────────────────────────────────────


def test_admin_operations_need_a_superadmin(gantry: Any) -> None:
    plain = gantry.user()
    ws = gantry.workspace(plain)
    key = gantry.bearer(gantry.api_key(ws["id"], plain, role="admin")["key"])
    target = gantry.user()
    for client in (plain.session, gantry.bearer(gantry.pat(plain)), key):
        client.get("/admin/users", expect=403, code="forbidden")
        client.post(
            "/admin/users",
            json={"email": "x@example.com", "name": "X", "password": "long-enough"},
            expect=403,
        )
        client.patch(f"/admin/users/{target.id}", json={"name": "X"}, expect=403)
        client.delete(f"/admin/users/{target.id}", expect=403)


# ── list ────────────────────────────────────────────────────────────────────────────────────


def test_list_users_filters_and_paginates(gantry: Any) -> None:
    made = [gantry.user("alpha" if i % 3 == 0 else "beta").id for i in range(11)]
    blocked = made[1]
    gantry.admin.patch(f"/admin/users/{blocked}", json={"status": "blocked"}, expect=200)
    everyone = gantry.walk(gantry.admin, "/admin/users", limit=4, order="asc")
    assert [u["id"] for u in everyone][1:] == made  # after the bootstrap admin
    assert everyone[0]["email"] == "admin@gantry.local"
    newest_first = gantry.walk(gantry.admin, "/admin/users", limit=3)
    assert [u["id"] for u in newest_first] == [u["id"] for u in everyone][::-1]
    alphas = gantry.walk(gantry.admin, "/admin/users", limit=2, q="ALPHA", order="asc")
    assert [u["id"] for u in alphas] == made[0::3]
    by_name = gantry.admin.get("/admin/users", query={"q": "Beta"}, expect=200).json["items"]
    assert len(by_name) == 7
    page = gantry.admin.get(
        "/admin/users", query={"status": "blocked", "include_total": True}, expect=200
    ).json
    assert [u["id"] for u in page["items"]] == [blocked]
    assert page["total"] == 1
    active_total = gantry.admin.get(
        "/admin/users", query={"status": "active", "include_total": True, "limit": 1}, expect=200
    ).json["total"]
    assert active_total == 11
    gantry.admin.get("/admin/users", query={"q": "%"}, expect=200)
    gantry.admin.get("/admin/users", query={"status": "gone"}, expect=400)


# ── create ──────────────────────────────────────────────────────────────────────────────────


def test_create_user(gantry: Any) -> None:
    response = _create(gantry, "Grace@Example.com", is_superadmin=True)
    assert response.status_code == 201
    body = response.json
    assert response.headers["Location"] == f"/api/v1/admin/users/{body['id']}"
    assert body["email"] == "grace@example.com"
    assert body["is_superadmin"] is True
    client = gantry.cookie_client()
    client.post(
        "/auth/login",
        json={"email": "grace@example.com", "password": "cobol-compiler-1959"},
        expect=200,
    )
    client.get("/admin/users", expect=200)
    with gantry.db() as db:
        event = db.query(AuditEvent).filter(AuditEvent.target_id == body["id"]).one()
    assert event.action == "user.created"
    assert event.workspace_id is None
    assert event.actor_type == "user"


def test_create_duplicate_email_is_409(gantry: Any) -> None:
    _create(gantry, "grace@example.com")
    before = gantry.counts()
    response = _create(gantry, "GRACE@example.com")
    assert response.status_code == 409
    assert response.json["code"] == "already_exists"
    assert gantry.counts() == before


# ── update ──────────────────────────────────────────────────────────────────────────────────


def test_update_name_and_password(gantry: Any) -> None:
    grace = gantry.user("grace")
    body = gantry.admin.patch(
        f"/admin/users/{grace.id}",
        json={"name": "Rear Admiral Hopper", "password": "new-password-1"},
        expect=200,
    ).json
    assert body["name"] == "Rear Admiral Hopper"
    gantry.cookie_client().post(
        "/auth/login", json={"email": grace.email, "password": "new-password-1"}, expect=200
    )
    with gantry.db() as db:
        event = (
            db.query(AuditEvent)
            .filter(AuditEvent.target_id == grace.id, AuditEvent.action == "user.updated")
            .one()
        )
    assert event.metadata_["fields"] == ["name", "password"]
    assert "new-password-1" not in str(event.metadata_) + event.summary


def test_block_ends_sessions_and_tokens(gantry: Any) -> None:
    grace = gantry.user("grace")
    token = gantry.pat(grace)
    body = gantry.admin.patch(
        f"/admin/users/{grace.id}", json={"status": "blocked"}, expect=200
    ).json
    assert body["status"] == "blocked"
    grace.session.get("/auth/me", expect=401)
    gantry.bearer(token).get("/auth/me", expect=401)


def test_promote_and_demote_superadmins(gantry: Any) -> None:
    grace = gantry.user("grace")
    assert gantry.admin.patch(
        f"/admin/users/{grace.id}", json={"is_superadmin": True}, expect=200
    ).json["is_superadmin"]
    grace.session.get("/admin/users", expect=200)
    grace.session.patch(f"/admin/users/{grace.id}", json={"is_superadmin": False}, expect=200)
    grace.session.get("/admin/users", expect=403)


def test_the_last_active_superadmin_stays(gantry: Any) -> None:
    me = gantry.admin.get("/auth/me", expect=200).json["user"]
    before = gantry.counts()
    for change in ({"is_superadmin": False}, {"status": "blocked"}):
        gantry.admin.patch(f"/admin/users/{me['id']}", json=change, expect=409, code="conflict")
    gantry.admin.delete(f"/admin/users/{me['id']}", expect=409, code="conflict")
    assert gantry.counts() == before
    # A blocked superadmin does not count.
    grace = gantry.user("grace")
    gantry.admin.patch(
        f"/admin/users/{grace.id}", json={"is_superadmin": True, "status": "blocked"}, expect=200
    )
    gantry.admin.patch(f"/admin/users/{me['id']}", json={"status": "blocked"}, expect=409)
    gantry.admin.patch(f"/admin/users/{grace.id}", json={"status": "active"}, expect=200)
    gantry.admin.patch(f"/admin/users/{me['id']}", json={"is_superadmin": False}, expect=200)


@pytest.mark.parametrize("body", [{}, {"name": None}, {"status": "gone"}, {"email": "x@y.z"}])
def test_update_validates_the_body(gantry: Any, body: dict[str, Any]) -> None:
    grace = gantry.user("grace")
    gantry.admin.patch(f"/admin/users/{grace.id}", json=body, expect=400, code="validation_failed")


def test_unknown_user_is_404(gantry: Any) -> None:
    missing = "usr_" + "Q" * 24
    gantry.admin.patch(f"/admin/users/{missing}", json={"name": "X"}, expect=404)
    gantry.admin.delete(f"/admin/users/{missing}", expect=404)


# ── delete ──────────────────────────────────────────────────────────────────────────────────


def test_delete_user(gantry: Any) -> None:
    grace = gantry.user("grace")
    owner = gantry.user()
    ws = gantry.workspace(owner)
    owner.session.post(
        f"/workspaces/{ws['id']}/members", json={"user_id": grace.id, "role": "editor"}, expect=201
    )
    token = gantry.pat(grace)
    gantry.admin.delete(f"/admin/users/{grace.id}", expect=204)
    grace.session.get("/auth/me", expect=401)
    gantry.bearer(token).get("/auth/me", expect=401)
    assert [
        m["user_id"]
        for m in owner.session.get(f"/workspaces/{ws['id']}/members", expect=200).json["items"]
    ] == [owner.id]
    assert gantry.count(User, User.id == grace.id) == 0
    with gantry.db() as db:
        actions = [e.action for e in db.query(AuditEvent).filter(AuditEvent.target_id == grace.id)]
    assert "user.deleted" in actions
    gantry.admin.delete(f"/admin/users/{grace.id}", expect=404)


def test_delete_the_last_owner_is_409(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    before = gantry.counts()
    gantry.admin.delete(f"/admin/users/{owner.id}", expect=409, code="last_owner")
    assert gantry.counts() == before
    co_owner = gantry.member(ws["id"], owner, "owner")
    gantry.admin.delete(f"/admin/users/{owner.id}", expect=204)
    assert co_owner.session.get(f"/workspaces/{ws['id']}", expect=200).json["role"] == "owner"
