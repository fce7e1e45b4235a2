"""The SDK fetch: published content only, the credential's workspace, ETag revalidation and a
sticky A/B split that matches its weight."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from server.domain import rollout

CONTENT = "Answer {{ customer }}."


def _setup(gantry: Any, **fields: Any) -> tuple[str, dict[str, Any], Any]:
    """A workspace, a prompt ``greeting`` in it (fields applied) and a viewer API key client."""
    ws = gantry.workspace(gantry.admin)["id"]
    body = {"key": "greeting", "content": CONTENT, "variables": ["customer"], **fields}
    prompt = gantry.admin.post(f"/workspaces/{ws}/prompts", json=body, expect=201).json
    key = gantry.bearer(gantry.api_key(ws, gantry.admin, role="viewer")["key"])
    return ws, prompt, key


def _publish_new(gantry: Any, prompt_id: str, content: str) -> int:
    gantry.admin.patch(f"/prompts/{prompt_id}", json={"content": content}, expect=200)
    version: int = gantry.admin.post(f"/prompts/{prompt_id}/publish", expect=201).json["version"]
    return version


def test_only_published_content_is_served(gantry: Any) -> None:
    _, prompt, key = _setup(gantry)
    key.get("/sdk/prompts/greeting", expect=404, code="not_published")
    gantry.admin.post(f"/prompts/{prompt['id']}/publish", expect=201)
    gantry.admin.patch(f"/prompts/{prompt['id']}", json={"content": "Draft {{ customer }}"})
    served = key.get("/sdk/prompts/greeting", expect=200).json
    assert served == {
        "key": "greeting",
        "env": "production",
        "version": 1,
        "label": None,
        "variant": None,
        "model": None,
        "content": CONTENT,  # the live version, never the draft
        "variables": ["customer"],
    }
    key.get("/sdk/prompts/unknown", expect=404, code="not_found")
    key.get("/sdk/prompts/greeting", query={"env": "staging"}, expect=404, code="not_found")


def test_a_version_can_be_asked_for(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    _publish_new(gantry, prompt["id"], "Two {{ customer }}")
    assert key.get("/sdk/prompts/greeting", expect=200).json["version"] == 2
    old = key.get("/sdk/prompts/greeting", query={"version": 1}, expect=200).json
    assert (old["version"], old["content"]) == (1, CONTENT)
    key.get("/sdk/prompts/greeting", query={"version": 3}, expect=404, code="not_found")


def test_env_selects_the_prompt(gantry: Any) -> None:
    ws, _, key = _setup(gantry, publish=True)
    gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "greeting", "env": "staging", "content": "Staging", "publish": True},
        expect=201,
    )
    staging = key.get("/sdk/prompts/greeting", query={"env": "staging"}, expect=200).json
    assert (staging["env"], staging["content"]) == ("staging", "Staging")
    gantry.admin.patch(f"/workspaces/{ws}", json={"settings": {"default_env": "staging"}})
    assert key.get("/sdk/prompts/greeting", expect=200).json["env"] == "staging"


def test_etag_revalidation(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    first = key.get("/sdk/prompts/greeting", expect=200)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')  # strong
    assert first.headers["Cache-Control"] == "private, max-age=0, must-revalidate"
    again = key.get("/sdk/prompts/greeting", headers={"If-None-Match": etag}, expect=304)
    assert again.get_data() == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    for header in (f'"other", {etag}', f"W/{etag}", "*"):
        key.get("/sdk/prompts/greeting", headers={"If-None-Match": header}, expect=304)
    key.get("/sdk/prompts/greeting", headers={"If-None-Match": '"other"'}, expect=200)
    # A publish changes what is served: the next revalidation gets the new content.
    _publish_new(gantry, prompt["id"], "New {{ customer }}")
    changed = key.get("/sdk/prompts/greeting", headers={"If-None-Match": etag}, expect=200)
    assert changed.json["content"] == "New {{ customer }}"
    assert changed.headers["ETag"] != etag
    # So does a rollback, back to the first ETag (the same content is the same ETag).
    gantry.admin.post(f"/prompts/{prompt['id']}/rollback", json={"version": 1}, expect=200)
    key.get("/sdk/prompts/greeting", headers={"If-None-Match": etag}, expect=304)


def test_a_draft_edit_does_not_change_the_etag(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    etag = key.get("/sdk/prompts/greeting", expect=200).headers["ETag"]
    gantry.admin.patch(f"/prompts/{prompt['id']}", json={"content": "Draft"}, expect=200)
    key.get("/sdk/prompts/greeting", headers={"If-None-Match": etag}, expect=304)


def test_any_workspace_credential_fetches(gantry: Any) -> None:
    owner = gantry.user("owner")
    ws = gantry.workspace(owner)["id"]
    owner.session.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "greeting", "content": "Hi", "publish": True},
        expect=201,
    )
    header = {"X-Workspace-Id": ws}
    for role in ("viewer", "operator", "editor", "admin"):
        client = gantry.bearer(gantry.api_key(ws, owner, role=role)["key"])
        client.get("/sdk/prompts/greeting", expect=200)
        client.get("/sdk/prompts/greeting", headers=header, expect=200)  # naming its own: fine
    sdk_key = gantry.bearer(gantry.api_key(ws, owner, role="viewer", scopes=("sdk",))["key"])
    sdk_key.get("/sdk/prompts/greeting", expect=200)
    viewer = gantry.member(ws, owner, "viewer")
    viewer.session.get("/sdk/prompts/greeting", headers=header, expect=200)
    read_pat = gantry.bearer(gantry.pat(viewer, ("read",)))
    read_pat.get("/sdk/prompts/greeting", headers=header, expect=200)
    # A user names the workspace; without it the request is incomplete.
    problem = read_pat.get("/sdk/prompts/greeting", expect=400, code="workspace_required").json
    assert problem["errors"][0]["field"] == "header.X-Workspace-Id"
    gateway_only = gantry.bearer(gantry.pat(viewer, ("gateway",)))
    gateway_only.get("/sdk/prompts/greeting", headers=header, expect=403, code="scope_denied")


def test_a_workspace_the_caller_cannot_see_is_not_found(gantry: Any) -> None:
    ws, _, key = _setup(gantry, publish=True)
    other = gantry.workspace(gantry.admin)["id"]
    foreign = gantry.bearer(gantry.api_key(other, gantry.admin, role="admin")["key"])
    foreign.get("/sdk/prompts/greeting", expect=404, code="not_found")  # its own has none
    foreign.get("/sdk/prompts/greeting", headers={"X-Workspace-Id": ws}, expect=404)
    key.get("/sdk/prompts/greeting", headers={"X-Workspace-Id": other}, expect=404)
    outsider = gantry.user("outsider")
    outsider.session.get("/sdk/prompts/greeting", headers={"X-Workspace-Id": ws}, expect=404)


def test_a_deleted_prompt_is_not_served(gantry: Any) -> None:
    ws, prompt, key = _setup(gantry, publish=True)
    gantry.admin.delete(f"/prompts/{prompt['id']}", expect=204)
    key.get("/sdk/prompts/greeting", expect=404, code="not_found")
    gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "greeting", "content": "Reborn", "publish": True},
        expect=201,
    )
    assert key.get("/sdk/prompts/greeting", expect=200).json["content"] == "Reborn"


# ── the rollout ─────────────────────────────────────────────────────────────────────────────


def test_a_sticky_rollout_serves_each_client_one_variant(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    _publish_new(gantry, prompt["id"], "B {{ customer }}")
    gantry.admin.put(
        f"/prompts/{prompt['id']}/rollout",
        json={"variant_a": 1, "variant_b": 2, "weight_a": 50},
        expect=200,
    )
    seen: dict[str, set[tuple[int, str]]] = {}
    for client in (f"user-{n}" for n in range(40)):
        for _ in range(3):
            served = key.get("/sdk/prompts/greeting", query={"client_id": client}, expect=200).json
            seen.setdefault(client, set()).add((served["version"], served["variant"]))
    assert all(len(variants) == 1 for variants in seen.values())  # sticky
    assert {next(iter(v)) for v in seen.values()} == {(1, "a"), (2, "b")}  # both in use
    # The server's choice is the documented one: the client's bucket against weight_a.
    for client, variants in seen.items():
        expected = "a" if rollout.bucket(prompt["id"], client) < 50 else "b"
        assert next(iter(variants))[1] == expected


def test_the_rollout_ends_and_switches_off(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    _publish_new(gantry, prompt["id"], "B {{ customer }}")
    path = f"/prompts/{prompt['id']}/rollout"
    gantry.admin.put(path, json={"variant_a": 1, "variant_b": 1, "weight_a": 100}, expect=200)
    served = key.get("/sdk/prompts/greeting", query={"client_id": "c"}, expect=200).json
    assert (served["version"], served["variant"]) == (1, "a")
    gantry.admin.put(path, json={"variant_a": 1, "variant_b": 1, "weight_a": 100, "enabled": False})
    served = key.get("/sdk/prompts/greeting", query={"client_id": "c"}, expect=200).json
    assert (served["version"], served["variant"]) == (2, None)  # the live version
    gantry.admin.put(path, json={"variant_a": 1, "variant_b": 1, "weight_a": 0}, expect=200)
    assert key.get("/sdk/prompts/greeting", expect=200).json["variant"] == "b"
    gantry.admin.delete(path, expect=204)
    served = key.get("/sdk/prompts/greeting", query={"client_id": "c"}, expect=200).json
    assert (served["version"], served["variant"]) == (2, None)


def test_the_variant_is_part_of_the_etag(gantry: Any) -> None:
    _, prompt, key = _setup(gantry, publish=True)
    gantry.admin.put(
        f"/prompts/{prompt['id']}/rollout",
        json={"variant_a": 1, "variant_b": 1, "weight_a": 50},
        expect=200,
    )
    by_variant: dict[str, str] = {}
    for n in range(60):
        response = key.get("/sdk/prompts/greeting", query={"client_id": f"c{n}"}, expect=200)
        by_variant.setdefault(response.json["variant"], response.headers["ETag"])
    assert set(by_variant) == {"a", "b"}
    assert by_variant["a"] != by_variant["b"]  # same content, another variant: revalidates


# Over 10,000 clients a weight's share is within 2 percentage points: the binomial standard
# deviation at 10,000 draws is at most 0.5 points, so 2 points is four of them.
CLIENTS = 10_000
TOLERANCE = 0.02


@pytest.mark.parametrize("weight_a", [0, 1, 10, 30, 50, 75, 99, 100])
def test_the_split_matches_the_weight(weight_a: int) -> None:
    settings = {"enabled": True, "variant_a": 1, "variant_b": 2, "weight_a": weight_a}
    clients = [f"client-{n}" for n in range(CLIENTS)]

    def split(prompt_id: str) -> Counter[str | None]:
        return Counter(
            rollout.choose(settings, 1, prompt_id=prompt_id, client_id=c).variant for c in clients
        )

    counts = split("prm_" + "A" * 24)
    assert abs(counts["a"] / CLIENTS - weight_a / 100) <= TOLERANCE, counts
    assert counts["a"] + counts["b"] == CLIENTS
    if 0 < weight_a < 100:
        # Another prompt splits the same clients independently (a client is not always "a").
        other = Counter(
            (
                rollout.choose(settings, 1, prompt_id="prm_" + "A" * 24, client_id=c).variant,
                rollout.choose(settings, 1, prompt_id="prm_" + "B" * 24, client_id=c).variant,
            )
            for c in clients
        )
        expected_both = CLIENTS * (weight_a / 100) ** 2
        assert abs(other[("a", "a")] - expected_both) <= TOLERANCE * CLIENTS


def test_without_a_client_id_the_draw_follows_the_weight() -> None:
    settings = {"enabled": True, "variant_a": 1, "variant_b": 2, "weight_a": 30, "sticky": True}
    draws = random.Random(7)
    counts = Counter(
        rollout.choose(settings, 1, prompt_id="p", client_id=None, draw=draws.randrange).variant
        for _ in range(CLIENTS)
    )
    assert abs(counts["a"] / CLIENTS - 0.30) <= TOLERANCE
    not_sticky = {**settings, "sticky": False}
    choices = {
        rollout.choose(not_sticky, 1, prompt_id="p", client_id="same", draw=draws.randrange).variant
        for _ in range(100)
    }
    assert choices == {"a", "b"}  # not sticky: the client id does not pin the variant
