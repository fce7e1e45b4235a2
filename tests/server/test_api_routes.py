"""gateway_routes: patterns over the workspace's backends, the gateway's order, partial
updates, and the configuration the data plane loads (``load_routes``)."""

from __future__ import annotations

from typing import Any

from server.domain.gateway_config import load_routes
from server.domain.unit import unit_of_work
from tests.server.gateway_setup import backend, provider, route


def test_create_takes_defaults(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made_backend = backend(gantry.admin, ws)
    response = gantry.admin.post(
        f"/workspaces/{ws}/gateway/routes",
        json={
            "name": "main",
            "model_patterns": ["gpt-4o*", "fast"],
            "backends": [{"backend_id": made_backend["id"]}],
        },
        expect=201,
    )
    made = response.json
    assert response.headers["Location"] == f"/api/v1/gateway/routes/{made['id']}"
    assert made["id"].startswith("rte_") and made["workspace_id"] == ws
    assert (made["priority"], made["enabled"], made["strategy"]) == (100, True, "failover")
    assert made["backends"] == [{"backend_id": made_backend["id"], "priority": 0, "weight": None}]
    assert made["cache"] == {"enabled": False, "ttl_seconds": 300}
    assert made["rate_limit"] is None
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "gateway.route.created"
    assert event["target"] == {"type": "gateway_route", "id": made["id"]}


def test_a_route_may_start_without_backends(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = route(gantry.admin, ws, cache={"enabled": True}, rate_limit={"requests_per_minute": 60})
    assert made["backends"] == []
    assert made["cache"] == {"enabled": True, "ttl_seconds": 300}
    assert made["rate_limit"] == {"requests_per_minute": 60, "burst": 20}


def test_backends_must_be_the_workspaces_and_listed_once(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    other = gantry.workspace(gantry.admin)["id"]
    mine = backend(gantry.admin, ws)
    foreign = backend(gantry.admin, other)
    base = f"/workspaces/{ws}/gateway/routes"
    before = gantry.counts()
    for backend_id in (foreign["id"], "bke_" + "0" * 24):
        gantry.admin.post(
            base,
            json={"name": "r", "model_patterns": ["*"], "backends": [{"backend_id": backend_id}]},
            expect=404,
            code="not_found",
        )
    twice = gantry.admin.post(
        base,
        json={
            "name": "r",
            "model_patterns": ["*"],
            "backends": [{"backend_id": mine["id"]}, {"backend_id": mine["id"], "priority": 1}],
        },
        expect=400,
        code="validation_failed",
    )
    assert twice.json["errors"][0]["field"] == "body.backends[0].backend_id"
    assert gantry.counts() == before


def test_names_are_unique_in_a_workspace(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    route(gantry.admin, ws, name="same")
    gantry.admin.post(
        f"/workspaces/{ws}/gateway/routes",
        json={"name": "same", "model_patterns": ["*"]},
        expect=409,
        code="already_exists",
    )
    second = route(gantry.admin, ws)
    gantry.admin.patch(
        f"/gateway/routes/{second['id']}", json={"name": "same"}, expect=409, code="already_exists"
    )


def test_list_in_the_gateways_order_across_pages(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = [
        route(gantry.admin, ws, priority=priority) for priority in (50, 10, 50, 10000, 0, 10, 50)
    ]
    expected = [
        r["id"] for r in sorted(made, key=lambda r: (r["priority"], r["created_at"], r["id"]))
    ]
    base = f"/workspaces/{ws}/gateway/routes"
    assert [r["id"] for r in gantry.walk(gantry.admin, base, limit=2)] == expected
    assert [r["id"] for r in gantry.walk(gantry.admin, base, limit=3)] == expected
    gantry.admin.patch(f"/gateway/routes/{made[3]['id']}", json={"enabled": False}, expect=200)
    page = gantry.admin.get(base, query={"enabled": False, "include_total": True}, expect=200).json
    assert [r["id"] for r in page["items"]] == [made[3]["id"]] and page["total"] == 1


def test_update_replaces_lists_merges_cache_and_clears_the_limit(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    a = backend(gantry.admin, ws)
    b = backend(gantry.admin, ws, a["provider_id"])
    made = route(
        gantry.admin,
        ws,
        a["id"],
        b["id"],
        cache={"enabled": True, "ttl_seconds": 600},
        rate_limit={"requests_per_minute": 600, "burst": 50},
    )
    updated = gantry.admin.patch(
        f"/gateway/routes/{made['id']}",
        json={
            "model_patterns": ["claude-*"],
            "strategy": "weighted",
            "backends": [{"backend_id": b["id"], "weight": 5}, {"backend_id": a["id"]}],
            "cache": {"ttl_seconds": 120},
            "rate_limit": None,
        },
        expect=200,
    ).json
    assert updated["model_patterns"] == ["claude-*"] and updated["strategy"] == "weighted"
    assert updated["backends"] == [
        {"backend_id": b["id"], "priority": 0, "weight": 5},
        {"backend_id": a["id"], "priority": 0, "weight": None},
    ]
    assert updated["cache"] == {"enabled": True, "ttl_seconds": 120}
    assert updated["rate_limit"] is None
    assert gantry.admin.get(f"/gateway/routes/{made['id']}", expect=200).json == updated
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "gateway.route.updated"
    assert set(event["metadata"]["changes"]) == {
        "model_patterns",
        "strategy",
        "backends",
        "cache",
        "rate_limit",
    }


def test_delete_frees_its_backends(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    used = backend(gantry.admin, ws)
    made = route(gantry.admin, ws, used["id"])
    gantry.admin.delete(f"/gateway/routes/{made['id']}", expect=204)
    gantry.admin.get(f"/gateway/routes/{made['id']}", expect=404)
    gantry.admin.delete(f"/gateway/backends/{used['id']}", expect=204)


def test_deleting_the_workspace_removes_its_gateway(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    used = backend(gantry.admin, ws)
    made = route(gantry.admin, ws, used["id"])
    gantry.admin.delete(f"/workspaces/{ws}", expect=204)
    gantry.admin.get(f"/gateway/routes/{made['id']}", expect=404)
    gantry.admin.get(f"/gateway/backends/{used['id']}", expect=404)
    gantry.admin.get(f"/providers/{used['provider_id']}", expect=404)


def test_roles_and_visibility_on_the_flat_paths(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)["id"]
    made = route(owner.session, ws)
    editor = gantry.member(ws, owner, "editor")
    stranger = gantry.user()
    editor.session.get(f"/gateway/routes/{made['id']}", expect=200)
    editor.session.patch(
        f"/gateway/routes/{made['id']}",
        json={"enabled": False},
        expect=403,
        code="insufficient_role",
    )
    editor.session.delete(f"/gateway/routes/{made['id']}", expect=403, code="insufficient_role")
    stranger.session.patch(f"/gateway/routes/{made['id']}", json={"enabled": False}, expect=404)


def test_load_routes_gives_the_data_plane_its_configuration(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    other = gantry.workspace(gantry.admin)["id"]
    keyed = provider(
        gantry.admin,
        ws,
        type="openai_compatible",
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-upstream-secret",
        extra_headers={"X-Tenant": "t-1"},
    )
    first = backend(gantry.admin, ws, keyed["id"], upstream_model="gpt-4o", weight=2)
    second = backend(gantry.admin, ws, keyed["id"], enabled=False, timeout_ms=5000)
    late = route(
        gantry.admin,
        ws,
        model_patterns=["*"],
        priority=50,
        enabled=False,
        cache={"enabled": True, "ttl_seconds": 60},
        rate_limit={"requests_per_minute": 10, "burst": 3},
    )
    early = gantry.admin.post(
        f"/workspaces/{ws}/gateway/routes",
        json={
            "name": "early",
            "model_patterns": ["gpt-*", "fast"],
            "priority": 5,
            "strategy": "weighted",
            "backends": [
                {"backend_id": second["id"], "priority": 2},
                {"backend_id": first["id"], "priority": 1, "weight": 7},
            ],
        },
        expect=201,
    ).json
    route(gantry.admin, other)
    database = gantry.app.extensions["gantry"].database
    box = gantry.app.extensions["gantry"].secret_box
    with unit_of_work(database.read_sessionmaker) as uow:
        configs = load_routes(uow, ws, secrets=box)
    assert [c.id for c in configs] == [early["id"], late["id"]]
    head, tail = configs
    assert (head.name, head.model_patterns, head.priority, head.strategy) == (
        "early",
        ("gpt-*", "fast"),
        5,
        "weighted",
    )
    assert [b.id for b in head.backends] == [first["id"], second["id"]]
    one, two = head.backends
    assert (one.weight, one.priority, one.upstream_model, one.enabled) == (7, 1, "gpt-4o", True)
    assert (two.weight, two.priority, two.timeout_ms, two.enabled) == (1, 2, 5000, False)
    assert one.provider.api_key == "sk-upstream-secret"
    assert dict(one.provider.extra_headers) == {"X-Tenant": "t-1"}
    assert (
        one.provider.base_url == "http://127.0.0.1:9/v1"
        and one.provider.type == "openai_compatible"
    )
    assert (head.cache_enabled, head.requests_per_minute, head.burst) == (False, None, None)
    assert (tail.enabled, tail.backends, tail.cache_enabled, tail.cache_ttl_seconds) == (
        False,
        (),
        True,
        60,
    )
    assert (tail.requests_per_minute, tail.burst) == (10, 3)
