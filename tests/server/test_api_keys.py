"""api_keys: create (role never above the creator's), list, revoke, expiry, and what a key may do."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from generated import models
from server.domain import api_keys
from server.domain.actors import Principal
from server.domain.errors import Forbidden
from server.domain.unit import unit_of_work


def test_create_defaults_and_shows_the_key_once(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    response = owner.session.post(
        f"/workspaces/{ws['id']}/api-keys", json={"name": "prod-gateway"}, expect=201
    )
    key = response.json
    assert response.headers["Location"] == f"/api/v1/workspaces/{ws['id']}/api-keys/{key['id']}"
    assert re.fullmatch(r"sk_[0-9A-Za-z]{40}", key["key"])
    assert key["prefix"] == key["key"][:8]
    assert key["role"] == "operator"
    assert key["scopes"] == []
    assert key["status"] == "active"
    assert key["expires_at"] is None
    assert key["last_used_at"] is None
    assert key["created_by"] == owner.id
    assert key["workspace_id"] == ws["id"]
    listed = owner.session.get(f"/workspaces/{ws['id']}/api-keys", expect=200)
    assert [k["id"] for k in listed.json["items"]] == [key["id"]]
    assert "key" not in listed.json["items"][0]
    assert key["key"] not in listed.get_data(as_text=True)


def test_create_records_the_event_without_the_secret(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner, role="editor", scopes=("gateway",))
    log = owner.session.get(f"/workspaces/{ws['id']}/audit-log", expect=200)
    event = log.json["items"][0]
    assert event["action"] == "api_key.created"
    assert event["target"] == {"type": "api_key", "id": key["id"]}
    assert event["metadata"]["role"] == "editor"
    assert event["metadata"]["scopes"] == ["gateway"]
    assert key["key"] not in log.get_data(as_text=True)


def test_key_acts_in_its_workspace_with_its_role(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    other = gantry.workspace(owner)
    key = gantry.bearer(gantry.api_key(ws["id"], owner, role="viewer")["key"])
    assert key.get(f"/workspaces/{ws['id']}", expect=200).json["role"] == "viewer"
    key.get(f"/workspaces/{ws['id']}/members", expect=200)
    key.get(f"/workspaces/{other['id']}", expect=404)
    key.patch(f"/workspaces/{ws['id']}", json={"name": "x"}, expect=403, code="insufficient_role")
    key.get("/users/lookup", query={"email": owner.email}, expect=403, code="forbidden")
    key.get("/tokens", expect=403, code="session_required")
    listed = owner.session.get(f"/workspaces/{ws['id']}/api-keys", expect=200).json["items"]
    assert any(k["last_used_at"] is not None for k in listed)


def test_admin_key_creates_keys_as_itself(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin_key = gantry.api_key(ws["id"], owner, role="admin")
    created = gantry.api_key(ws["id"], gantry.bearer(admin_key["key"]), role="admin")
    assert created["created_by"] == admin_key["id"]


@pytest.mark.parametrize("role", ["viewer", "operator", "editor", "admin"])
def test_admins_create_keys_up_to_admin(gantry: Any, role: str) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    assert gantry.api_key(ws["id"], admin, role=role)["role"] == role


def test_owner_is_not_a_key_role(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    owner.session.post(
        f"/workspaces/{ws['id']}/api-keys",
        json={"name": "k", "role": "owner"},
        expect=400,
        code="validation_failed",
    )


def test_key_role_never_above_the_creators(gantry: Any, app: Any) -> None:
    # Through HTTP every creator is at least admin and no key role exceeds admin, so the rule
    # is exercised on the domain function, with a creator whose effective role is lower.
    owner = gantry.user()
    ws = gantry.workspace(owner)
    state = app.extensions["gantry"]
    actor = Principal(kind="session", credential_id="ses_x", label=owner.email, user_id=owner.id)
    for creator_role, key_role in (("editor", "admin"), ("viewer", "operator")):
        request = models.ApiKeyCreate.model_validate({"name": "k", "role": key_role})
        with (
            pytest.raises(Forbidden) as caught,
            unit_of_work(state.database.sessionmaker, actor) as uow,
        ):
            api_keys.issue_key(uow, ws["id"], request, creator_role=creator_role)
        assert caught.value.code == "insufficient_role"
    assert owner.session.get(f"/workspaces/{ws['id']}/api-keys").json["items"] == []


def test_viewers_list_but_do_not_create_or_revoke(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner)
    viewer = gantry.member(ws["id"], owner, "viewer")
    viewer.session.get(f"/workspaces/{ws['id']}/api-keys", expect=200)
    viewer.session.post(
        f"/workspaces/{ws['id']}/api-keys", json={"name": "x"}, expect=403, code="insufficient_role"
    )
    viewer.session.delete(
        f"/workspaces/{ws['id']}/api-keys/{key['id']}", expect=403, code="insufficient_role"
    )


def test_a_past_expiry_makes_a_key_that_is_already_expired(gantry: Any) -> None:
    # JSON Schema cannot say "in the future", so a past date is accepted (the spec promises
    # schema-valid requests are) and the key simply never works.
    owner = gantry.user()
    ws = gantry.workspace(owner)
    expired = owner.session.post(
        f"/workspaces/{ws['id']}/api-keys",
        json={"name": "k", "expires_at": gantry.stamp(timedelta(minutes=-1))},
        expect=201,
    ).json
    gantry.bearer(expired["key"]).get(f"/workspaces/{ws['id']}", expect=401, code="token_expired")
    later = datetime.now(UTC) + timedelta(days=3)
    key = owner.session.post(
        f"/workspaces/{ws['id']}/api-keys",
        json={"name": "k", "expires_at": later.isoformat(), "scopes": ["gateway", "sdk"]},
        expect=201,
    ).json
    assert abs(
        datetime.fromisoformat(key["expires_at"].replace("Z", "+00:00")) - later
    ) < timedelta(seconds=1)
    assert sorted(key["scopes"]) == ["gateway", "sdk"]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": ""}, {"name": "k", "scopes": ["admin"]}, {"name": "k", "scopes": ["sdk", "sdk"]}],
)
def test_create_validates_the_body(gantry: Any, body: dict[str, Any]) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    owner.session.post(
        f"/workspaces/{ws['id']}/api-keys", json=body, expect=400, code="validation_failed"
    )


def test_revoke_is_permanent_and_a_second_revoke_is_404(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner)
    path = f"/workspaces/{ws['id']}/api-keys/{key['id']}"
    owner.session.delete(path, expect=204)
    owner.session.delete(path, expect=404, code="not_found")
    gantry.bearer(key["key"]).get("/auth/me", expect=401, code="token_revoked")
    listed = owner.session.get(
        f"/workspaces/{ws['id']}/api-keys", query={"status": "revoked"}, expect=200
    ).json["items"]
    assert [(k["id"], k["status"]) for k in listed] == [(key["id"], "revoked")]
    assert (
        owner.session.get(
            f"/workspaces/{ws['id']}/api-keys", query={"status": "active"}, expect=200
        ).json["items"]
        == []
    )
    event = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "api_key.revoked"}, expect=200
    ).json["items"][0]
    assert event["target"]["id"] == key["id"]


def test_a_key_of_another_workspace_is_404(gantry: Any) -> None:
    owner = gantry.user()
    one = gantry.workspace(owner)
    two = gantry.workspace(owner)
    key = gantry.api_key(one["id"], owner)
    owner.session.delete(f"/workspaces/{two['id']}/api-keys/{key['id']}", expect=404)
    gantry.bearer(key["key"]).get("/auth/me", expect=200)


def test_a_key_may_revoke_itself(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner, role="admin")
    client = gantry.bearer(key["key"])
    client.delete(f"/workspaces/{ws['id']}/api-keys/{key['id']}", expect=204)
    client.get("/auth/me", expect=401, code="token_revoked")


def test_list_paginates(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    ids = [gantry.api_key(ws["id"], owner, name=f"k{i}")["id"] for i in range(12)]
    path = f"/workspaces/{ws['id']}/api-keys"
    assert [k["id"] for k in gantry.walk(owner.session, path, limit=5)] == ids[::-1]
    assert [k["id"] for k in gantry.walk(owner.session, path, limit=7, order="asc")] == ids
    page = owner.session.get(path, query={"include_total": True, "limit": 2}, expect=200).json
    assert page["total"] == 12
