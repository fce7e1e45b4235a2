"""prompts: drafts, versions, publish and rollback, the rollout, soft delete, roles, audit and
change events."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.domain import events, prompts
from server.domain.errors import NotFound
from server.domain.unit import SYSTEM, unit_of_work

BASE = {
    "key": "support-reply",
    "content": "Answer {{ customer }}.\nQuestion: {{ question }}",
    "variables": ["customer", "question"],
}


@pytest.fixture
def heard() -> Iterator[list[events.Event]]:
    """The events delivered on the bus while the test runs."""
    got: list[events.Event] = []
    unsubscribe = events.BUS.subscribe(got.append)
    yield got
    unsubscribe()


def _workspace(gantry: Any) -> str:
    return str(gantry.workspace(gantry.admin)["id"])


def _create(gantry: Any, ws: str, **fields: Any) -> dict[str, Any]:
    body = {**BASE, **fields}
    created: dict[str, Any] = gantry.admin.post(
        f"/workspaces/{ws}/prompts", json=body, expect=201
    ).json
    return created


def _actions(gantry: Any, ws: str) -> list[str]:
    log = gantry.admin.get(f"/workspaces/{ws}/audit-log", query={"limit": 200}, expect=200).json
    return [event["action"] for event in reversed(log["items"])]


# ── create, read, list ──────────────────────────────────────────────────────────────────────


def test_create_makes_an_unpublished_draft_in_the_default_env(gantry: Any) -> None:
    ws = _workspace(gantry)
    response = gantry.admin.post(f"/workspaces/{ws}/prompts", json=BASE, expect=201)
    prompt = response.json
    assert response.headers["Location"] == f"/api/v1/prompts/{prompt['id']}"
    assert prompt["env"] == "production"  # the workspace's default_env
    assert prompt["name"] == "support-reply"  # the key, when no name is given
    assert prompt["status"] == "unpublished"
    assert prompt["draft_changed"] is True
    assert (prompt["live_version"], prompt["latest_version"], prompt["rollout"]) == (None, 0, None)
    assert gantry.admin.get(f"/prompts/{prompt['id']}", expect=200).json == prompt


def test_the_default_env_follows_the_workspace_setting(gantry: Any) -> None:
    ws = _workspace(gantry)
    gantry.admin.patch(f"/workspaces/{ws}", json={"settings": {"default_env": "staging"}})
    assert _create(gantry, ws)["env"] == "staging"


def test_create_with_publish_makes_version_one_live(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True)
    assert (prompt["status"], prompt["live_version"], prompt["draft_changed"]) == (
        "published",
        1,
        False,
    )
    version = gantry.admin.get(f"/prompts/{prompt['id']}/versions/1", expect=200).json
    assert version["content"] == BASE["content"]
    # One request, one moment: the two events share a timestamp, so their order is not given.
    assert sorted(_actions(gantry, ws)[-2:]) == ["prompt.created", "prompt.published"]


def test_key_and_env_are_unique_until_deleted(gantry: Any) -> None:
    ws = _workspace(gantry)
    first = _create(gantry, ws)
    gantry.admin.post(f"/workspaces/{ws}/prompts", json=BASE, expect=409, code="already_exists")
    _create(gantry, ws, env="staging")  # another env is another prompt
    gantry.admin.delete(f"/prompts/{first['id']}", expect=204)
    again = _create(gantry, ws)  # the key and env are free again
    assert again["id"] != first["id"]


def test_soft_delete_hides_the_prompt_everywhere(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True)
    pid = prompt["id"]
    gantry.admin.delete(f"/prompts/{pid}", expect=204)
    for path in (
        f"/prompts/{pid}",
        f"/prompts/{pid}/versions",
        f"/prompts/{pid}/versions/1",
        f"/prompts/{pid}/rollout",
    ):
        gantry.admin.get(path, expect=404, code="not_found")
    gantry.admin.patch(f"/prompts/{pid}", json={"name": "x"}, expect=404)
    gantry.admin.post(f"/prompts/{pid}/publish", expect=404)
    gantry.admin.delete(f"/prompts/{pid}", expect=404)
    listed = gantry.admin.get(f"/workspaces/{ws}/prompts", expect=200).json
    assert listed["items"] == []
    assert _actions(gantry, ws)[-1] == "prompt.deleted"


def test_list_filters(gantry: Any) -> None:
    ws = _workspace(gantry)
    a = _create(gantry, ws, key="welcome-mail", name="Welcome", category="mail", tags=["email"])
    b = _create(gantry, ws, key="support-reply", category="support", tags=["email", "short"])
    c = _create(gantry, ws, key="support-reply", env="staging", tags=["short"])

    def ids(**query: Any) -> set[str]:
        page = gantry.admin.get(f"/workspaces/{ws}/prompts", query=query, expect=200).json
        return {p["id"] for p in page["items"]}

    assert ids() == {a["id"], b["id"], c["id"]}
    assert ids(q="SUPPORT") == {b["id"], c["id"]}
    assert ids(q="welc") == {a["id"]}  # the name matches too
    assert ids(q="%") == set()  # LIKE wildcards are literal
    assert ids(env="staging") == {c["id"]}
    assert ids(category="mail") == {a["id"]}
    assert ids(tag="email") == {a["id"], b["id"]}
    assert ids(tag="emai") == set()  # whole tags only
    assert ids(tag="short", env="production") == {b["id"]}
    page = gantry.admin.get(
        f"/workspaces/{ws}/prompts", query={"tag": "short", "include_total": True}, expect=200
    ).json
    assert page["total"] == 2


def test_updated_since_sees_every_kind_of_change(gantry: Any, app: Any) -> None:
    ws = _workspace(gantry)
    old = _create(gantry, ws, key="old", publish=True)
    fresh = _create(gantry, ws, key="fresh")
    later = datetime.now(UTC) + timedelta(hours=1)
    app.extensions["gantry"].clock = lambda: later
    since = (later - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")

    def changed() -> set[str]:
        page = gantry.admin.get(
            f"/workspaces/{ws}/prompts", query={"updated_since": since}, expect=200
        ).json
        return {p["id"] for p in page["items"]}

    assert changed() == set()
    gantry.admin.put(
        f"/prompts/{old['id']}/rollout",
        json={"variant_a": 1, "variant_b": 1, "weight_a": 50},
        expect=200,
    )
    assert changed() == {old["id"]}
    gantry.admin.patch(f"/prompts/{fresh['id']}", json={"tags": ["x"]}, expect=200)
    assert changed() == {old["id"], fresh["id"]}


def test_lists_are_workspace_scoped_and_hidden_from_outsiders(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    outsider = gantry.user("outsider")
    outsider.session.get(f"/prompts/{prompt['id']}", expect=404, code="not_found")
    outsider.session.get(f"/workspaces/{ws}/prompts", expect=404)
    other = _workspace(gantry)
    listed = gantry.admin.get(f"/workspaces/{other}/prompts", expect=200).json
    assert listed["items"] == []


# ── roles ───────────────────────────────────────────────────────────────────────────────────


def test_viewers_read_and_editors_write(gantry: Any) -> None:
    owner = gantry.user("owner")
    ws = gantry.workspace(owner)["id"]
    viewer = gantry.member(ws, owner, "viewer")
    operator = gantry.member(ws, owner, "operator")
    editor = gantry.member(ws, owner, "editor")
    prompt = editor.session.post(f"/workspaces/{ws}/prompts", json=BASE, expect=201).json
    pid = prompt["id"]
    viewer.session.get(f"/prompts/{pid}", expect=200)
    viewer.session.get(f"/workspaces/{ws}/prompts", expect=200)
    viewer.session.get(f"/prompts/{pid}/rollout", expect=200)
    for who in (viewer, operator):
        who.session.patch(
            f"/prompts/{pid}", json={"name": "x"}, expect=403, code="insufficient_role"
        )
        who.session.post(f"/prompts/{pid}/publish", expect=403, code="insufficient_role")
        who.session.delete(f"/prompts/{pid}", expect=403, code="insufficient_role")
    editor.session.post(f"/prompts/{pid}/publish", expect=201)
    key = gantry.api_key(ws, owner, role="editor")
    created = (
        gantry.bearer(key["key"])
        .post(f"/workspaces/{ws}/prompts", json={**BASE, "key": "by-key"}, expect=201)
        .json
    )
    assert created["created_by"] == key["id"]


# ── the draft, publish and rollback ─────────────────────────────────────────────────────────


def test_editing_the_draft_tracks_draft_changed(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True)
    path = f"/prompts/{prompt['id']}"
    renamed = gantry.admin.patch(path, json={"name": "Renamed"}, expect=200).json
    assert (renamed["status"], renamed["draft_changed"]) == ("published", False)  # not versioned
    edited = gantry.admin.patch(path, json={"tags": ["new"]}, expect=200).json
    assert (edited["status"], edited["draft_changed"]) == ("changed", True)
    back = gantry.admin.patch(path, json={"tags": []}, expect=200).json
    assert (back["status"], back["draft_changed"]) == ("published", False)
    cleared = gantry.admin.patch(path, json={"model": "gpt-4o", "category": None}, expect=200)
    assert cleared.json["model"] == "gpt-4o"
    assert cleared.json["category"] is None
    assert cleared.json["live_version"] == 1  # the draft changes, the live version does not


def test_publish_numbers_versions_and_refuses_an_unchanged_draft(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    path = f"/prompts/{prompt['id']}"
    first = gantry.admin.post(f"{path}/publish", expect=201)
    assert first.headers["Location"] == f"/api/v1{path}/versions/1"
    assert first.json["version"] == 1
    assert first.json["label"] is None
    gantry.admin.post(f"{path}/publish", expect=409, code="no_changes")
    gantry.admin.patch(path, json={"content": "Hi {{ customer }} {{ question }}"}, expect=200)
    second = gantry.admin.post(
        f"{path}/publish", json={"label": "v2", "note": "Shorter."}, expect=201
    ).json
    assert (second["version"], second["label"], second["note"]) == (2, "v2", "Shorter.")
    assert (second["key"], second["env"], second["prompt_id"]) == (
        prompt["key"],
        prompt["env"],
        prompt["id"],
    )
    now = gantry.admin.get(path, expect=200).json
    assert (now["live_version"], now["latest_version"], now["status"]) == (2, 2, "published")
    versions = gantry.admin.get(f"{path}/versions", expect=200).json["items"]
    assert [v["version"] for v in versions] == [2, 1]  # newest first
    ascending = gantry.admin.get(f"{path}/versions", query={"order": "asc"}, expect=200).json
    assert [v["version"] for v in ascending["items"]] == [1, 2]
    gantry.admin.get(f"{path}/versions/3", expect=404, code="not_found")


def test_versions_page_by_number(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    path = f"/prompts/{prompt['id']}"
    for n in range(5):
        gantry.admin.patch(path, json={"tags": [f"t{n}"]}, expect=200)
        gantry.admin.post(f"{path}/publish", expect=201)
    walked = gantry.walk(gantry.admin, f"{path}/versions", limit=2)
    assert [v["version"] for v in walked] == [5, 4, 3, 2, 1]
    walked = gantry.walk(gantry.admin, f"{path}/versions", limit=2, order="asc")
    assert [v["version"] for v in walked] == [1, 2, 3, 4, 5]


def test_rollback_makes_a_version_live_and_copies_it_into_the_draft(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True, model="gpt-4o-mini")
    path = f"/prompts/{prompt['id']}"
    gantry.admin.patch(
        path, json={"content": "New {{ customer }} {{ question }}", "model": "gpt-4o"}
    )
    gantry.admin.post(f"{path}/publish", expect=201)
    gantry.admin.patch(path, json={"tags": ["unpublished-edit"]}, expect=200)
    rolled = gantry.admin.post(f"{path}/rollback", json={"version": 1}, expect=200).json
    assert rolled["live_version"] == 1
    assert rolled["latest_version"] == 2  # no new version is made
    assert (rolled["content"], rolled["model"], rolled["tags"]) == (
        BASE["content"],
        "gpt-4o-mini",
        [],
    )
    assert (rolled["status"], rolled["draft_changed"]) == ("published", False)
    gantry.admin.post(f"{path}/publish", expect=409, code="no_changes")
    gantry.admin.post(f"{path}/rollback", json={"version": 9}, expect=404, code="not_found")
    assert _actions(gantry, ws)[-1] == "prompt.rolled_back"


def test_a_never_published_prompt_cannot_roll_back(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    gantry.admin.post(f"/prompts/{prompt['id']}/rollback", json={"version": 1}, expect=404)


# ── the rollout ─────────────────────────────────────────────────────────────────────────────


def test_rollout_set_read_replace_and_delete(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True)
    path = f"/prompts/{prompt['id']}"
    null = gantry.admin.get(f"{path}/rollout", expect=200)
    assert null.get_data() == b"null"
    gantry.admin.delete(f"{path}/rollout", expect=404)
    gantry.admin.put(
        f"{path}/rollout",
        json={"variant_a": 1, "variant_b": 2, "weight_a": 50},
        expect=400,
        code="unknown_version",
    )
    gantry.admin.patch(path, json={"tags": ["b"]}, expect=200)
    gantry.admin.post(f"{path}/publish", expect=201)
    rollout = gantry.admin.put(
        f"{path}/rollout", json={"variant_a": 1, "variant_b": 2, "weight_a": 20}, expect=200
    ).json
    assert (rollout["enabled"], rollout["sticky"], rollout["weight_a"]) == (True, True, 20)
    assert gantry.admin.get(f"{path}/rollout", expect=200).json == rollout
    assert gantry.admin.get(path, expect=200).json["rollout"] == rollout
    replaced = gantry.admin.put(
        f"{path}/rollout",
        json={"variant_a": 2, "variant_b": 1, "weight_a": 100, "enabled": False},
        expect=200,
    ).json
    assert (replaced["variant_a"], replaced["enabled"], replaced["sticky"]) == (2, False, True)
    gantry.admin.delete(f"{path}/rollout", expect=204)
    assert gantry.admin.get(f"{path}/rollout", expect=200).get_data() == b"null"
    assert _actions(gantry, ws)[-3:] == [
        "prompt.rollout.updated",
        "prompt.rollout.updated",
        "prompt.rollout.deleted",
    ]


def test_unknown_version_names_the_variant(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws, publish=True)
    problem = gantry.admin.put(
        f"/prompts/{prompt['id']}/rollout",
        json={"variant_a": 1, "variant_b": 7, "weight_a": 50},
        expect=400,
        code="unknown_version",
    ).json
    assert [e["field"] for e in problem["errors"]] == ["body.variant_b"]


# ── audit and events ────────────────────────────────────────────────────────────────────────


def test_every_change_is_audited_on_the_prompt(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    path = f"/prompts/{prompt['id']}"
    gantry.admin.post(f"{path}/publish", json={"label": "v1"}, expect=201)
    gantry.admin.patch(path, json={"tags": ["x"]}, expect=200)
    gantry.admin.post(f"{path}/publish", expect=201)
    gantry.admin.post(f"{path}/rollback", json={"version": 1}, expect=200)
    gantry.admin.put(f"{path}/rollout", json={"variant_a": 1, "variant_b": 2, "weight_a": 5})
    gantry.admin.delete(f"{path}/rollout", expect=204)
    gantry.admin.delete(path, expect=204)
    log = gantry.admin.get(f"/workspaces/{ws}/audit-log", query={"limit": 200}).json["items"]
    mine = [e for e in reversed(log) if e["target"]["type"] == "prompt"]
    assert [e["action"] for e in mine] == [
        "prompt.created",
        "prompt.published",
        "prompt.updated",
        "prompt.published",
        "prompt.rolled_back",
        "prompt.rollout.updated",
        "prompt.rollout.deleted",
        "prompt.deleted",
    ]
    assert {e["target"]["id"] for e in mine} == {prompt["id"]}
    assert mine[1]["metadata"] == {"version": 1, "label": "v1", "note": None}
    assert mine[4]["metadata"] == {"from": 2, "to": 1}
    assert mine[5]["metadata"]["weight_a"] == 5


def test_changes_are_announced_after_they_commit(gantry: Any, heard: list[Any]) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    path = f"/prompts/{prompt['id']}"
    gantry.admin.post(f"{path}/publish", expect=201)
    gantry.admin.post(f"{path}/publish", expect=409)  # refused: nothing to announce
    gantry.admin.patch(path, json={"tags": ["x"]}, expect=200)
    gantry.admin.put(f"{path}/rollout", json={"variant_a": 1, "variant_b": 1, "weight_a": 5})
    gantry.admin.post(f"{path}/rollback", json={"version": 1}, expect=200)
    gantry.admin.delete(f"{path}/rollout", expect=204)
    gantry.admin.delete(path, expect=204)
    mine = [e for e in heard if e.workspace_id == ws]
    assert [e.type for e in mine] == [
        "prompt.created",
        "prompt.published",
        "prompt.updated",
        "rollout.updated",
        "prompt.rolled_back",
        "rollout.deleted",
        "prompt.deleted",
    ]
    published = mine[1].message()
    assert published["data"] == {
        "prompt_id": prompt["id"],
        "key": prompt["key"],
        "env": prompt["env"],
        "version": 1,
    }
    assert published["id"].startswith("evt_")
    assert published["workspace_id"] == ws


def test_a_change_rolled_back_is_never_announced(gantry: Any, app: Any, heard: list[Any]) -> None:
    ws = _workspace(gantry)
    prompt = _create(gantry, ws)
    heard.clear()
    state = app.extensions["gantry"]
    with pytest.raises(NotFound), unit_of_work(state.database.sessionmaker, SYSTEM) as uow:
        prompts.publish(uow, ws, prompt["id"], None)  # announced on commit…
        raise NotFound("then something fails")  # …which never comes
    assert heard == []
    assert gantry.admin.get(f"/prompts/{prompt['id']}").json["live_version"] is None
    with unit_of_work(state.database.sessionmaker, SYSTEM) as uow:
        prompts.publish(uow, ws, prompt["id"], None)
        assert heard == []  # not before the commit either
    assert [e.type for e in heard] == ["prompt.published"]
