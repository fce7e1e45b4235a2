"""workspaces: create, read, update, delete, list with cursor pagination, visibility (404 for
non-members on every workspace operation) and roles (403 for members below the least role)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from server.domain import roles
from server.storage.models import AuditEvent, Membership, Workspace

WORKSPACE_PREFIX = "/api/v1/workspaces/{workspace_id}"
# The tenancy areas; the areas that keep their own resources in a workspace test their
# operations' visibility and roles with those resources.
TENANCY_TAGS = frozenset({"workspaces", "members", "api_keys", "audit"})


def _workspace_ops(gantry: Any) -> list[Any]:
    ops = [
        op
        for op in gantry.operations()
        if op.path.startswith(WORKSPACE_PREFIX) and op.tag in TENANCY_TAGS
    ]
    assert len(ops) == 11  # 3 workspace + 4 member + 3 api key + 1 audit operations
    return ops


def _call(gantry: Any, client: Any, op: Any, workspace_id: str, **ids: str) -> Any:
    body = gantry.example_body(op) if op.request_body is not None else None
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    return client.request(
        op.method, gantry.concrete_path(op, workspace_id=workspace_id, **ids), **kwargs
    )


# ── create ──────────────────────────────────────────────────────────────────────────────────


def test_create_makes_the_caller_owner(gantry: Any) -> None:
    owner = gantry.user()
    response = owner.session.post(
        "/workspaces", json={"name": "Acme Research", "slug": "acme-research"}, expect=201
    )
    ws = response.json
    assert response.headers["Location"] == f"/api/v1/workspaces/{ws['id']}"
    assert ws["role"] == "owner"
    assert ws["settings"] == {"default_env": "production", "max_members": 100}
    assert ws["slug"] == "acme-research"
    assert ws["created_at"] == ws["updated_at"]
    members = owner.session.get(f"/workspaces/{ws['id']}/members", expect=200).json["items"]
    assert [(m["user_id"], m["role"]) for m in members] == [(owner.id, "owner")]
    events = owner.session.get(f"/workspaces/{ws['id']}/audit-log", expect=200).json["items"]
    assert [e["action"] for e in events] == ["workspace.created"]
    assert events[0]["actor"] == {"type": "user", "id": owner.id, "label": owner.email}
    assert events[0]["target"] == {"type": "workspace", "id": ws["id"]}


def test_duplicate_slug_is_409_and_writes_nothing(gantry: Any) -> None:
    first = gantry.user()
    second = gantry.user()
    gantry.workspace(first, "taken")
    before = gantry.counts()
    second.session.post(
        "/workspaces", json={"name": "Again", "slug": "taken"}, expect=409, code="already_exists"
    )
    assert gantry.counts() == before
    assert gantry.count(Membership, Membership.user_id == second.id) == 0
    assert second.session.get("/workspaces", expect=200).json["items"] == []


def test_unique_race_on_flush_is_409_and_writes_nothing(
    gantry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The slug check passes (as if another request had not committed yet); the unique
    # constraint then catches the duplicate at the flush.
    from server.storage import workspaces

    owner = gantry.user()
    gantry.workspace(owner, "raced")
    monkeypatch.setattr(workspaces, "get_workspace_by_slug", lambda *a, **k: None)
    before = gantry.counts()
    owner.session.post(
        "/workspaces", json={"name": "R", "slug": "raced"}, expect=409, code="already_exists"
    )
    assert gantry.counts() == before


def test_create_needs_a_user(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner, role="admin")
    gantry.bearer(key["key"]).post(
        "/workspaces", json={"name": "K", "slug": "by-key"}, expect=403, code="forbidden"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"name": "X"},
        {"slug": "x"},
        {"name": "X", "slug": "Not A Slug"},
        {"name": "X", "slug": "-x"},
        {"name": "", "slug": "x"},
        {"name": "X", "slug": "x", "extra": 1},
        {"name": "line\nbreak", "slug": "x"},
    ],
)
def test_create_validates_the_body(gantry: Any, body: dict[str, Any]) -> None:
    owner = gantry.user()
    owner.session.post("/workspaces", json=body, expect=400, code="validation_failed")


# ── read, update, delete ────────────────────────────────────────────────────────────────────


def test_get_shows_the_callers_role(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    for role in roles.WORKSPACE_ROLES[:-1]:
        member = gantry.member(ws["id"], owner, role)
        assert member.session.get(f"/workspaces/{ws['id']}", expect=200).json["role"] == role


def test_update_name_slug_and_settings(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    path = f"/workspaces/{ws['id']}"
    body = owner.session.patch(
        path, json={"name": "Renamed", "settings": {"default_env": "staging"}}, expect=200
    ).json
    assert body["name"] == "Renamed"
    assert body["settings"] == {"default_env": "staging", "max_members": 100}
    assert body["updated_at"] > ws["updated_at"]
    body = owner.session.patch(path, json={"settings": {"max_members": 5}}, expect=200).json
    assert body["settings"] == {"default_env": "staging", "max_members": 5}  # merged
    body = owner.session.patch(path, json={"slug": "new-slug"}, expect=200).json
    assert body["slug"] == "new-slug"
    assert owner.session.get(path, expect=200).json == body
    events = owner.session.get(
        f"{path}/audit-log", query={"action": "workspace.updated", "order": "asc"}, expect=200
    ).json["items"]
    assert len(events) == 3
    assert events[0]["metadata"]["changes"]["name"] == {"from": ws["name"], "to": "Renamed"}


def test_update_rejects_empty_null_and_unknown(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    path = f"/workspaces/{ws['id']}"
    for body in ({}, {"name": None}, {"settings": {}}, {"settings": {"max_members": 0}}, {"x": 1}):
        owner.session.patch(path, json=body, expect=400, code="validation_failed")


def test_update_to_a_taken_slug_is_409(gantry: Any) -> None:
    owner = gantry.user()
    gantry.workspace(owner, "one")
    two = gantry.workspace(owner, "two")
    before = gantry.counts()
    owner.session.patch(
        f"/workspaces/{two['id']}", json={"slug": "one"}, expect=409, code="already_exists"
    )
    assert gantry.counts() == before
    # Its own slug is not a conflict.
    owner.session.patch(f"/workspaces/{two['id']}", json={"slug": "two"}, expect=200)


def test_max_members_cannot_drop_below_the_members(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    gantry.member(ws["id"], owner, "viewer")
    gantry.member(ws["id"], owner, "viewer")
    owner.session.patch(
        f"/workspaces/{ws['id']}", json={"settings": {"max_members": 2}}, expect=409
    )
    owner.session.patch(
        f"/workspaces/{ws['id']}", json={"settings": {"max_members": 3}}, expect=200
    )


def test_update_needs_admin(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    for role in ("viewer", "operator", "editor"):
        member = gantry.member(ws["id"], owner, role)
        member.session.patch(
            f"/workspaces/{ws['id']}", json={"name": "X"}, expect=403, code="insufficient_role"
        )
    admin = gantry.member(ws["id"], owner, "admin")
    admin.session.patch(f"/workspaces/{ws['id']}", json={"name": "By admin"}, expect=200)


def test_delete_is_owner_only_and_keeps_the_audit_trail(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    admin = gantry.member(ws["id"], owner, "admin")
    key = gantry.api_key(ws["id"], owner, role="admin")
    admin.session.delete(f"/workspaces/{ws['id']}", expect=403, code="insufficient_role")
    gantry.bearer(key["key"]).delete(f"/workspaces/{ws['id']}", expect=403)
    owner.session.delete(f"/workspaces/{ws['id']}", expect=204)
    owner.session.get(f"/workspaces/{ws['id']}", expect=404, code="not_found")
    admin.session.get(f"/workspaces/{ws['id']}", expect=404)
    gantry.bearer(key["key"]).get("/auth/me", expect=401)  # its keys went with it
    assert gantry.count(Workspace, Workspace.id == ws["id"]) == 0
    assert gantry.count(Membership, Membership.workspace_id == ws["id"]) == 0
    with gantry.db() as db:
        actions = {
            e.action for e in db.query(AuditEvent).filter(AuditEvent.workspace_id == ws["id"])
        }
    assert {"workspace.created", "member.added", "api_key.created", "workspace.deleted"} <= actions


# ── visibility: 404, not 403 ────────────────────────────────────────────────────────────────


def test_non_members_get_404_on_every_workspace_operation(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    key = gantry.api_key(ws["id"], owner)
    stranger = gantry.user("stranger")
    stranger_ws = gantry.workspace(stranger)
    other_key = gantry.bearer(gantry.api_key(stranger_ws["id"], stranger, role="admin")["key"])
    stranger_pat = gantry.bearer(gantry.pat(stranger))
    before = gantry.counts()
    for client in (stranger.session, stranger_pat, other_key):
        for op in _workspace_ops(gantry):
            response = _call(gantry, client, op, ws["id"], user_id=owner.id, key_id=key["id"])
            assert response.status_code == 404, (op.operation_id, response.json)
            assert response.json["code"] == "not_found"
    # A workspace that does not exist answers the same.
    missing = "ws_" + "N" * 24
    for op in _workspace_ops(gantry):
        response = _call(gantry, owner.session, op, missing, user_id=owner.id, key_id=key["id"])
        assert response.status_code == 404, op.operation_id
    assert gantry.counts() == before


def test_superadmins_are_not_members(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    gantry.admin.get(f"/workspaces/{ws['id']}", expect=404)


def test_viewer_gets_403_on_admin_operations(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    viewer = gantry.member(ws["id"], owner, "viewer")
    key = gantry.api_key(ws["id"], owner)
    for op in _workspace_ops(gantry):
        if op.min_role == "viewer":
            continue
        response = _call(gantry, viewer.session, op, ws["id"], user_id=owner.id, key_id=key["id"])
        assert response.status_code == 403, (op.operation_id, response.json)
        assert response.json["code"] == "insufficient_role"


@pytest.mark.parametrize("key_role", ["viewer", "operator", "editor", "admin"])
def test_api_key_role_is_enforced(gantry: Any, key_role: str) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    victim = gantry.member(ws["id"], owner, "viewer")
    other_key = gantry.api_key(ws["id"], owner)
    client = gantry.bearer(gantry.api_key(ws["id"], owner, role=key_role)["key"])
    for op in _workspace_ops(gantry):
        if op.operation_id in ("removeMember", "revokeApiKey", "deleteWorkspace", "addMember"):
            continue  # destructive or conflicting; covered in their own tests
        response = _call(gantry, client, op, ws["id"], user_id=victim.id, key_id=other_key["id"])
        allowed = roles.at_least(key_role, op.min_role)
        if allowed:
            assert response.status_code < 400 or response.json["code"] not in (
                "insufficient_role",
                "not_found",
            ), (op.operation_id, response.json)
        else:
            assert response.status_code == 403, (op.operation_id, response.json)
            assert response.json["code"] == "insufficient_role"


# ── list and pagination ─────────────────────────────────────────────────────────────────────


def test_list_shows_only_the_callers_workspaces(gantry: Any) -> None:
    alice = gantry.user()
    bob = gantry.user()
    mine = gantry.workspace(alice)
    gantry.workspace(bob)
    shared = gantry.workspace(bob)
    bob.session.post(
        f"/workspaces/{shared['id']}/members",
        json={"user_id": alice.id, "role": "editor"},
        expect=201,
    )
    items = alice.session.get("/workspaces", expect=200).json["items"]
    assert [(w["id"], w["role"]) for w in items] == [
        (shared["id"], "editor"),
        (mine["id"], "owner"),
    ]


def test_an_api_key_lists_its_one_workspace(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    gantry.workspace(owner)
    key = gantry.bearer(gantry.api_key(ws["id"], owner, role="viewer")["key"])
    page = key.get("/workspaces", query={"include_total": True}, expect=200).json
    assert [(w["id"], w["role"]) for w in page["items"]] == [(ws["id"], "viewer")]
    assert page["total"] == 1
    assert page["next_cursor"] is None


def test_pagination_walks_every_item_once_in_both_orders(gantry: Any) -> None:
    owner = gantry.user()
    created = [gantry.workspace(owner)["id"] for _ in range(13)]
    for limit in (1, 4, 5, 13, 50):
        newest_first = gantry.walk(owner.session, "/workspaces", limit=limit)
        assert [w["id"] for w in newest_first] == created[::-1], limit
        oldest_first = gantry.walk(owner.session, "/workspaces", limit=limit, order="asc")
        assert [w["id"] for w in oldest_first] == created, limit


def test_pagination_total(gantry: Any) -> None:
    owner = gantry.user()
    for _ in range(11):
        gantry.workspace(owner)
    first = owner.session.get(
        "/workspaces", query={"limit": 3, "include_total": True}, expect=200
    ).json
    assert first["total"] == 11
    assert len(first["items"]) == 3
    second = owner.session.get(
        "/workspaces",
        query={"limit": 3, "include_total": True, "cursor": first["next_cursor"]},
        expect=200,
    ).json
    assert second["total"] == 11
    assert "total" not in owner.session.get("/workspaces", expect=200).json


def test_tampered_and_foreign_cursors_are_400(gantry: Any) -> None:
    owner = gantry.user()
    for _ in range(3):
        gantry.workspace(owner)
    token_ids = [gantry.pat(owner, name=f"t{i}") for i in range(3)]
    assert token_ids
    cursor = owner.session.get("/workspaces", query={"limit": 1}, expect=200).json["next_cursor"]
    assert cursor
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    for bad in (tampered, "garbage", "A" * 40):
        owner.session.get("/workspaces", query={"cursor": bad}, expect=400, code="invalid_cursor")
    # A cursor from another list, or the same list in the other order, is not valid here.
    token_cursor = owner.session.get("/tokens", query={"limit": 1}, expect=200).json["next_cursor"]
    owner.session.get(
        "/workspaces", query={"cursor": token_cursor}, expect=400, code="invalid_cursor"
    )
    owner.session.get(
        "/workspaces", query={"cursor": cursor, "order": "asc"}, expect=400, code="invalid_cursor"
    )
    owner.session.get("/workspaces", query={"cursor": "has space"}, expect=400)


def test_cursor_is_bound_to_the_workspace(gantry: Any) -> None:
    owner = gantry.user()
    one = gantry.workspace(owner)
    two = gantry.workspace(owner)
    for ws in (one, two):
        for _ in range(2):
            gantry.member(ws["id"], owner, "viewer")
    cursor = owner.session.get(
        f"/workspaces/{one['id']}/members", query={"limit": 1}, expect=200
    ).json["next_cursor"]
    owner.session.get(
        f"/workspaces/{two['id']}/members",
        query={"cursor": cursor},
        expect=400,
        code="invalid_cursor",
    )


@pytest.mark.parametrize(
    "query",
    [{"limit": 0}, {"limit": 201}, {"limit": "ten"}, {"order": "up"}, {"include_total": "yes"}],
)
def test_pagination_parameters_are_validated(gantry: Any, query: dict[str, Any]) -> None:
    owner = gantry.user()
    response = owner.session.get("/workspaces", query=query, expect=400, code="validation_failed")
    assert response.json["errors"][0]["field"].startswith("query.")


def test_settings_not_stored_show_the_documented_defaults(gantry: Any) -> None:
    # WorkspaceSettings documents its defaults in the spec; a workspace that stores fewer
    # settings (an older row) shows them, and a change of one setting keeps the others.
    owner = gantry.user()
    ws = gantry.workspace(owner)
    with gantry.db() as db:
        db.execute(
            update(Workspace)
            .where(Workspace.id == ws["id"])
            .values(settings={"default_env": None, "retired": True})
        )
    path = f"/workspaces/{ws['id']}"
    shown = owner.session.get(path, expect=200).json["settings"]
    assert shown == {"default_env": "production", "max_members": 100}
    changed = owner.session.patch(path, json={"settings": {"max_members": 7}}, expect=200).json
    assert changed["settings"] == {"default_env": "production", "max_members": 7}
    event = owner.session.get(
        f"{path}/audit-log", query={"action": "workspace.updated"}, expect=200
    ).json["items"][0]
    assert event["metadata"]["changes"] == {"settings": {"max_members": {"from": 100, "to": 7}}}
