"""members: add, list, change roles, remove — the owner rules and the last-owner rule."""

from __future__ import annotations

from typing import Any

import pytest

from generated import models
from server.domain import members
from server.domain.actors import Principal
from server.domain.errors import Forbidden
from server.domain.unit import unit_of_work
from server.storage.models import Membership


def _members(client: Any, ws_id: str, **query: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(
        f"/workspaces/{ws_id}/members", query=query or None, expect=200
    ).json["items"]
    return items


def _roles(client: Any, ws_id: str) -> dict[str, str]:
    return {m["user_id"]: m["role"] for m in _members(client, ws_id)}


# ── add ─────────────────────────────────────────────────────────────────────────────────────


def test_add_by_user_id(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    grace = gantry.user("grace")
    response = owner.session.post(
        f"/workspaces/{ws['id']}/members", json={"user_id": grace.id, "role": "editor"}, expect=201
    )
    member = response.json
    assert response.headers["Location"] == f"/api/v1/workspaces/{ws['id']}/members/{grace.id}"
    assert member == {
        "workspace_id": ws["id"],
        "user_id": grace.id,
        "email": grace.email,
        "name": grace.name,
        "role": "editor",
        "created_at": member["created_at"],
        "updated_at": member["created_at"],
    }
    assert grace.session.get(f"/workspaces/{ws['id']}", expect=200).json["role"] == "editor"
    event = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "member.added"}, expect=200
    ).json["items"][0]
    assert event["target"] == {"type": "member", "id": grace.id}
    assert event["metadata"]["role"] == "editor"


def test_add_by_email_case_insensitively(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    grace = gantry.user("grace")
    member = owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"email": grace.email.upper(), "role": "viewer"},
        expect=201,
    ).json
    assert member["user_id"] == grace.id


def test_add_unknown_user_is_404(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    before = gantry.counts()
    owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": "usr_" + "Z" * 24, "role": "viewer"},
        expect=404,
        code="not_found",
    )
    owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"email": "nobody@example.com", "role": "viewer"},
        expect=404,
    )
    assert gantry.counts() == before


def test_add_existing_member_is_409(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    member = gantry.member(ws["id"], owner, "viewer")
    before = gantry.counts()
    owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": member.id, "role": "editor"},
        expect=409,
        code="already_exists",
    )
    owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": owner.id, "role": "viewer"},
        expect=409,
        code="already_exists",
    )
    assert gantry.counts() == before


@pytest.mark.parametrize(
    "body",
    [
        {"role": "viewer"},
        {"user_id": "usr_" + "A" * 24, "email": "a@example.com", "role": "viewer"},
        {"user_id": "usr_" + "A" * 24},
        {"user_id": "usr_" + "A" * 24, "role": "king"},
        {"user_id": "nope", "role": "viewer"},
    ],
)
def test_add_validates_the_body(gantry: Any, body: dict[str, Any]) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    owner.session.post(
        f"/workspaces/{ws['id']}/members", json=body, expect=400, code="validation_failed"
    )


def test_only_an_owner_adds_an_owner(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    newcomer = gantry.user()
    before = gantry.counts()
    admin.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": newcomer.id, "role": "owner"},
        expect=403,
        code="insufficient_role",
    )
    assert gantry.counts() == before
    admin.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": newcomer.id, "role": "admin"},
        expect=201,
    )
    other = gantry.user()
    owner.session.post(
        f"/workspaces/{ws['id']}/members", json={"user_id": other.id, "role": "owner"}, expect=201
    )


def test_add_respects_max_members(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    owner.session.patch(
        f"/workspaces/{ws['id']}", json={"settings": {"max_members": 2}}, expect=200
    )
    gantry.member(ws["id"], owner, "viewer")
    late = gantry.user()
    owner.session.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": late.id, "role": "viewer"},
        expect=409,
        code="conflict",
    )


# ── list ────────────────────────────────────────────────────────────────────────────────────


def test_list_filters_by_role_and_paginates(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    added = [gantry.member(ws["id"], owner, "viewer" if i % 2 else "editor").id for i in range(11)]
    path = f"/workspaces/{ws['id']}/members"
    everyone = [owner.id, *added]
    assert [
        m["user_id"] for m in gantry.walk(owner.session, path, limit=3, order="asc")
    ] == everyone
    assert [m["user_id"] for m in gantry.walk(owner.session, path, limit=4)] == everyone[::-1]
    viewers = gantry.walk(owner.session, path, limit=2, role="viewer", order="asc")
    assert [m["user_id"] for m in viewers] == added[1::2]
    page = owner.session.get(
        path, query={"role": "editor", "include_total": True, "limit": 1}, expect=200
    ).json
    assert page["total"] == 6
    owner.session.get(path, query={"role": "king"}, expect=400, code="validation_failed")


def test_viewers_can_list_members(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    viewer = gantry.member(ws["id"], owner, "viewer")
    assert set(_roles(viewer.session, ws["id"])) == {owner.id, viewer.id}


# ── change roles ────────────────────────────────────────────────────────────────────────────


def test_admin_changes_roles_up_to_admin(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    grace = gantry.member(ws["id"], owner, "viewer")
    path = f"/workspaces/{ws['id']}/members/{grace.id}"
    body = admin.session.patch(path, json={"role": "admin"}, expect=200).json
    assert body["role"] == "admin"
    assert body["updated_at"] >= body["created_at"]
    admin.session.patch(path, json={"role": "owner"}, expect=403, code="insufficient_role")
    event = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "member.role_changed"}, expect=200
    ).json["items"][0]
    assert event["metadata"]["from"] == "viewer"
    assert event["metadata"]["to"] == "admin"
    assert event["actor"]["id"] == admin.id


def test_only_an_owner_changes_an_owner(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    second_owner = gantry.member(ws["id"], owner, "owner")
    path = f"/workspaces/{ws['id']}/members/{second_owner.id}"
    admin.session.patch(path, json={"role": "viewer"}, expect=403, code="insufficient_role")
    owner.session.patch(path, json={"role": "editor"}, expect=200)
    owner.session.patch(
        f"/workspaces/{ws['id']}/members/{admin.id}", json={"role": "owner"}, expect=200
    )


def test_the_last_owner_cannot_be_demoted(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    path = f"/workspaces/{ws['id']}/members/{owner.id}"
    before = gantry.counts()
    owner.session.patch(path, json={"role": "admin"}, expect=409, code="last_owner")
    assert gantry.counts() == before
    assert _roles(owner.session, ws["id"])[owner.id] == "owner"
    second = gantry.member(ws["id"], owner, "owner")
    owner.session.patch(path, json={"role": "admin"}, expect=200)
    second.session.patch(
        f"/workspaces/{ws['id']}/members/{second.id}",
        json={"role": "viewer"},
        expect=409,
        code="last_owner",
    )


def test_same_role_is_a_no_op(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    member = gantry.member(ws["id"], owner, "editor")
    owner.session.patch(
        f"/workspaces/{ws['id']}/members/{member.id}", json={"role": "editor"}, expect=200
    )
    events = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "member.role_changed"}, expect=200
    ).json["items"]
    assert events == []


def test_update_unknown_member_is_404(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    outsider = gantry.user()
    owner.session.patch(
        f"/workspaces/{ws['id']}/members/{outsider.id}", json={"role": "viewer"}, expect=404
    )
    owner.session.patch(f"/workspaces/{ws['id']}/members/{outsider.id}", json={}, expect=400)


# ── remove ──────────────────────────────────────────────────────────────────────────────────


def test_remove_a_member(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    member = gantry.member(ws["id"], owner, "editor")
    admin.session.delete(f"/workspaces/{ws['id']}/members/{member.id}", expect=204)
    member.session.get(f"/workspaces/{ws['id']}", expect=404)
    admin.session.delete(f"/workspaces/{ws['id']}/members/{member.id}", expect=404)
    event = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "member.removed"}, expect=200
    ).json["items"][0]
    assert event["target"]["id"] == member.id
    assert event["metadata"]["role"] == "editor"


def test_only_an_owner_removes_an_owner(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    second = gantry.member(ws["id"], owner, "owner")
    admin.session.delete(
        f"/workspaces/{ws['id']}/members/{second.id}", expect=403, code="insufficient_role"
    )
    owner.session.delete(f"/workspaces/{ws['id']}/members/{second.id}", expect=204)


def test_the_last_owner_cannot_be_removed(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    before = gantry.counts()
    owner.session.delete(
        f"/workspaces/{ws['id']}/members/{owner.id}", expect=409, code="last_owner"
    )
    assert gantry.counts() == before
    gantry.member(ws["id"], owner, "owner")
    owner.session.delete(f"/workspaces/{ws['id']}/members/{owner.id}", expect=204)
    assert gantry.count(Membership, Membership.user_id == owner.id) == 0


def test_admins_may_remove_themselves(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    admin.session.delete(f"/workspaces/{ws['id']}/members/{admin.id}", expect=204)
    admin.session.get(f"/workspaces/{ws['id']}", expect=404)


def test_api_key_admin_manages_members_but_not_owners(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.bearer(gantry.api_key(ws["id"], owner, role="admin")["key"])
    grace = gantry.user()
    key.post(
        f"/workspaces/{ws['id']}/members",
        json={"user_id": grace.id, "role": "owner"},
        expect=403,
        code="insufficient_role",
    )
    key.post(
        f"/workspaces/{ws['id']}/members", json={"user_id": grace.id, "role": "editor"}, expect=201
    )
    key.delete(f"/workspaces/{ws['id']}/members/{owner.id}", expect=403, code="insufficient_role")
    event = owner.session.get(
        f"/workspaces/{ws['id']}/audit-log", query={"action": "member.added"}, expect=200
    ).json["items"][0]
    assert event["actor"]["type"] == "api_key"


def test_who_grants_which_role_is_the_specs(
    gantry: Any, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Through HTTP every caller here is an admin or an owner, so the rule is exercised on the
    # domain functions: with a role the spec's x-gantry-role-grants does not list, and with
    # grants declared otherwise.
    owner = gantry.user()
    ws = gantry.workspace(owner)
    grace = gantry.member(ws["id"], owner, "viewer")
    newcomer = gantry.user()
    state = app.extensions["gantry"]
    actor = Principal(kind="session", credential_id="ses_x", label=owner.email, user_id=owner.id)

    def refused(change: Any) -> str:
        with (
            pytest.raises(Forbidden) as caught,
            unit_of_work(state.database.sessionmaker, actor) as uow,
        ):
            change(uow)
        assert caught.value.code == "insufficient_role"
        return caught.value.detail

    add = models.MemberAdd.model_validate({"user_id": newcomer.id, "role": "viewer"})
    promote = models.MemberUpdate.model_validate({"role": "operator"})
    detail = refused(lambda uow: members.add_member(uow, ws["id"], add, caller_role="editor"))
    assert detail == "Only an admin or an owner can add a viewer."
    refused(lambda uow: members.change_role(uow, ws["id"], grace.id, promote, caller_role="editor"))
    refused(lambda uow: members.remove_member(uow, ws["id"], grace.id, caller_role="editor"))
    monkeypatch.setattr(members, "ROLE_GRANTS", {"owner": frozenset({"owner", "admin"})})
    detail = refused(lambda uow: members.add_member(uow, ws["id"], add, caller_role="owner"))
    assert detail == "No member can add a viewer."
    assert _roles(owner.session, ws["id"]) == {owner.id: "owner", grace.id: "viewer"}
