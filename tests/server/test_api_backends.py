"""gateway_backends: a provider of the workspace, unique names, health from probes, statistics
from the request log, and no deletion while a route uses one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from server.security import new_id
from server.storage.gateway_traffic import GatewayRequest
from tests.server.gateway_setup import backend, fake_upstream, provider, route


def test_create_takes_defaults_and_starts_unknown(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    owner = provider(gantry.admin, ws)
    response = gantry.admin.post(
        f"/workspaces/{ws}/gateway/backends",
        json={"name": "primary", "provider_id": owner["id"], "upstream_model": "gpt-4o"},
        expect=201,
    )
    made = response.json
    assert response.headers["Location"] == f"/api/v1/gateway/backends/{made['id']}"
    assert made["id"].startswith("bke_") and made["workspace_id"] == ws
    assert (made["weight"], made["timeout_ms"], made["enabled"]) == (1, 60000, True)
    assert (made["health"], made["health_checked_at"]) == ("unknown", None)
    assert "stats" not in made
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "gateway.backend.created"
    assert event["target"] == {"type": "gateway_backend", "id": made["id"]}


def test_the_provider_must_be_the_workspaces(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    other = gantry.workspace(gantry.admin)["id"]
    foreign = provider(gantry.admin, other)
    for provider_id in (foreign["id"], "prv_" + "0" * 24):
        gantry.admin.post(
            f"/workspaces/{ws}/gateway/backends",
            json={"name": "b", "provider_id": provider_id, "upstream_model": "m"},
            expect=404,
            code="not_found",
        )


def test_names_are_unique_in_a_workspace(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    first = backend(gantry.admin, ws, name="same")
    gantry.admin.post(
        f"/workspaces/{ws}/gateway/backends",
        json={"name": "same", "provider_id": first["provider_id"], "upstream_model": "m"},
        expect=409,
        code="already_exists",
    )
    second = backend(gantry.admin, ws, first["provider_id"])
    gantry.admin.patch(
        f"/gateway/backends/{second['id']}",
        json={"name": "same"},
        expect=409,
        code="already_exists",
    )


def test_update_changes_only_what_is_sent(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = backend(gantry.admin, ws)
    updated = gantry.admin.patch(
        f"/gateway/backends/{made['id']}",
        json={"enabled": False, "weight": 3, "timeout_ms": 30000},
        expect=200,
    ).json
    assert (updated["enabled"], updated["weight"], updated["timeout_ms"]) == (False, 3, 30000)
    assert updated["upstream_model"] == made["upstream_model"] and updated["name"] == made["name"]
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "gateway.backend.updated"
    assert event["metadata"]["changes"]["enabled"] == {"from": True, "to": False}


def test_a_backend_in_use_cannot_be_deleted(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = backend(gantry.admin, ws)
    kept = backend(gantry.admin, ws, made["provider_id"])
    user = route(gantry.admin, ws, made["id"], kept["id"], name="busy")
    answer = gantry.admin.delete(
        f"/gateway/backends/{made['id']}", expect=409, code="backend_in_use"
    )
    assert "busy" in answer.json["detail"]
    gantry.admin.patch(
        f"/gateway/routes/{user['id']}", json={"backends": [{"backend_id": kept["id"]}]}, expect=200
    )
    gantry.admin.delete(f"/gateway/backends/{made['id']}", expect=204)
    gantry.admin.get(f"/gateway/backends/{made['id']}", expect=404)
    gantry.admin.delete(f"/gateway/backends/{kept['id']}", expect=409, code="backend_in_use")


def test_list_filters(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    one = provider(gantry.admin, ws)
    two = provider(gantry.admin, ws)
    a = backend(gantry.admin, ws, one["id"])
    b = backend(gantry.admin, ws, two["id"], enabled=False)
    c = backend(gantry.admin, ws, two["id"])
    base = f"/workspaces/{ws}/gateway/backends"

    def ids(**query: Any) -> list[str]:
        return [x["id"] for x in gantry.admin.get(base, query=query, expect=200).json["items"]]

    assert ids() == [c["id"], b["id"], a["id"]]
    assert ids(provider_id=two["id"]) == [c["id"], b["id"]]
    assert ids(enabled=False) == [b["id"]]
    assert ids(health="unknown", order="asc") == [a["id"], b["id"], c["id"]]
    assert ids(health="healthy") == []
    walked = gantry.walk(gantry.admin, base, limit=1, order="asc")
    assert [x["id"] for x in walked] == [a["id"], b["id"], c["id"]]


def test_get_shows_empty_stats_before_any_call(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = backend(gantry.admin, ws)
    shown = gantry.admin.get(f"/gateway/backends/{made['id']}", expect=200).json
    assert shown["stats"] == {
        "window_seconds": 3600,
        "requests": 0,
        "errors": 0,
        "p50_ms": None,
        "tokens": 0,
    }


def _logged(
    gantry: Any, ws: str, backend_id: str, latency_ms: int, *, age: timedelta, **fields: Any
) -> None:
    values: dict[str, Any] = {
        "status_code": 200,
        "error": None,
        "prompt_tokens": 10,
        "completion_tokens": 5,
        **fields,
    }
    with gantry.db() as db:
        db.add(
            GatewayRequest(
                id=new_id("gwr_"),
                workspace_id=ws,
                credential_id=None,
                run_id=None,
                api="openai",
                model="gpt-4o",
                upstream_model="gpt-4o",
                route_id=None,
                backend_id=backend_id,
                stream=False,
                cache=None,
                cached_tokens=0,
                cache_write_tokens=0,
                cost_usd=None,
                latency_ms=latency_ms,
                request_id=None,
                created_at=datetime.now(UTC) - age,
                **values,
            )
        )
        db.commit()


def test_stats_come_from_the_recent_request_log(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = backend(gantry.admin, ws)
    other = backend(gantry.admin, ws)
    recent = timedelta(minutes=5)
    for latency in (40, 10, 30, 20):
        _logged(gantry, ws, made["id"], latency, age=recent)
    _logged(gantry, ws, made["id"], 500, age=recent, status_code=502, error="upstream failed")
    _logged(gantry, ws, made["id"], 9000, age=timedelta(hours=2))  # outside the window
    _logged(gantry, ws, other["id"], 1, age=recent)  # another backend's
    stats = gantry.admin.get(f"/gateway/backends/{made['id']}", expect=200).json["stats"]
    # Five calls in the window; the median of 10, 20, 30, 40, 500 is 30.
    assert stats == {
        "window_seconds": 3600,
        "requests": 5,
        "errors": 1,
        "p50_ms": 30,
        "tokens": 75,
    }
    _logged(gantry, ws, made["id"], 5, age=recent, status_code=429, prompt_tokens=0)
    stats = gantry.admin.get(f"/gateway/backends/{made['id']}", expect=200).json["stats"]
    # Six calls: the lower of the two middle ones (20, 30) is the median.
    assert (stats["requests"], stats["errors"], stats["p50_ms"]) == (6, 2, 20)


def test_testing_a_local_backend_makes_it_healthy(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = backend(gantry.admin, ws)
    result = gantry.admin.post(f"/gateway/backends/{made['id']}/test", expect=200).json
    assert result["ok"] is True and result["health"] == "healthy" and result["error"] is None
    shown = gantry.admin.get(f"/gateway/backends/{made['id']}", expect=200).json
    assert shown["health"] == "healthy" and shown["health_checked_at"] is not None
    listed = gantry.admin.get(
        f"/workspaces/{ws}/gateway/backends", query={"health": "healthy"}, expect=200
    ).json
    assert [x["id"] for x in listed["items"]] == [made["id"]]


def test_a_failing_backend_turns_unhealthy(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    with fake_upstream(status=503) as upstream:
        owner = provider(
            gantry.admin,
            ws,
            type="openai_compatible",
            base_url=upstream.base_url,
            api_key="sk-test-upstream",
        )
        made = backend(gantry.admin, ws, owner["id"], upstream_model="gpt-4o")
        answer = gantry.admin.post(f"/gateway/backends/{made['id']}/test", expect=200)
        assert upstream.seen[0]["Authorization"] == "Bearer sk-test-upstream"
    result = answer.json
    assert result["ok"] is False and result["health"] == "unhealthy"
    assert "503" in result["error"] and "sk-test-upstream" not in answer.get_data(as_text=True)
    with fake_upstream() as upstream:
        gantry.admin.patch(
            f"/providers/{owner['id']}", json={"base_url": upstream.base_url}, expect=200
        )
        healed = gantry.admin.post(f"/gateway/backends/{made['id']}/test", expect=200).json
    assert healed["ok"] is True and healed["health"] == "healthy"


def test_roles_and_visibility_on_the_flat_paths(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)["id"]
    made = backend(owner.session, ws)
    viewer = gantry.member(ws, owner, "viewer")
    stranger = gantry.user()
    viewer.session.get(f"/gateway/backends/{made['id']}", expect=200)
    viewer.session.patch(
        f"/gateway/backends/{made['id']}",
        json={"enabled": False},
        expect=403,
        code="insufficient_role",
    )
    viewer.session.post(
        f"/gateway/backends/{made['id']}/test", expect=403, code="insufficient_role"
    )
    stranger.session.get(f"/gateway/backends/{made['id']}", expect=404)
    stranger.session.delete(f"/gateway/backends/{made['id']}", expect=404)
