"""The playground: a prompt rendered and answered by the gateway's ``local`` provider, recorded
as a run with its usage, its steps and the gateway's request log entry."""

from __future__ import annotations

from typing import Any

from tests.server import gateway_setup


def _workspace_with_local_model(gantry: Any) -> str:
    ws: str = gantry.workspace(gantry.admin)["id"]
    backend = gateway_setup.backend(gantry.admin, ws, upstream_model="local-1")
    gateway_setup.route(gantry.admin, ws, backend["id"], model_patterns=["local-*"])
    return ws


def _runs(gantry: Any) -> int:
    return int(gantry.counts()["runs"])


def test_an_inline_template_is_rendered_answered_and_recorded(gantry: Any) -> None:
    ws = _workspace_with_local_model(gantry)
    result = gantry.admin.post(
        f"/workspaces/{ws}/playground/run",
        json={
            "template": "Say hello to {{ name|upper }}.",
            "variables": {"name": "Ada"},
            "model": "local-1",
        },
        expect=200,
    ).json
    assert result["status"] == "succeeded"
    assert result["rendered"] == "Say hello to ADA."
    assert result["completion"] == "You said: Say hello to ADA."  # the local model's answer
    assert (result["prompt_id"], result["version"], result["error"]) == (None, None, None)
    usage = result["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

    run = gantry.admin.get(f"/runs/{result['run_id']}", expect=200).json
    assert run["source"] == {"type": "playground", "id": None}
    assert run["status"] == "succeeded"
    assert run["usage"]["prompt_tokens"] == usage["prompt_tokens"]
    assert run["usage"]["completion_tokens"] == usage["completion_tokens"]
    assert run["output"]["text"] == result["completion"]
    steps = gantry.admin.get(f"/runs/{result['run_id']}/steps", expect=200).json["steps"]
    assert [(s["key"], s["type"], s["status"]) for s in steps] == [
        ("render", "render", "succeeded"),
        ("model", "model", "succeeded"),
    ]
    calls = gantry.admin.get(f"/workspaces/{ws}/gateway/requests", expect=200).json["items"]
    mine = [c for c in calls if c.get("run_id") == result["run_id"]]
    assert len(mine) == 1
    assert mine[0]["prompt_tokens"] == usage["prompt_tokens"]
    log = gantry.admin.get(
        f"/workspaces/{ws}/audit-log", query={"action": "run.created"}, expect=200
    ).json["items"]
    assert [e["target"]["id"] for e in log] == [result["run_id"]]


def test_a_prompt_is_rendered_from_its_published_versions(gantry: Any) -> None:
    ws = _workspace_with_local_model(gantry)
    prompt = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={
            "key": "hello",
            "content": "Hello {{ who }}",
            "variables": ["who"],
            "model": "local-1",
        },
        expect=201,
    ).json
    run = f"/workspaces/{ws}/playground/run"
    body = {"prompt_id": prompt["id"], "variables": {"who": "Grace"}}
    gantry.admin.post(run, json=body, expect=404, code="not_published")  # never the draft
    gantry.admin.post(f"/prompts/{prompt['id']}/publish", expect=201)
    gantry.admin.patch(f"/prompts/{prompt['id']}", json={"content": "Bye {{ who }}"})
    gantry.admin.post(f"/prompts/{prompt['id']}/publish", expect=201)
    live = gantry.admin.post(run, json=body, expect=200).json
    assert (live["rendered"], live["version"], live["prompt_id"]) == ("Bye Grace", 2, prompt["id"])
    assert live["model"] == "local-1"  # the prompt's own model
    first = gantry.admin.post(run, json={**body, "version": 1}, expect=200).json
    assert (first["rendered"], first["version"]) == ("Hello Grace", 1)
    gantry.admin.post(run, json={**body, "version": 7}, expect=404)
    source = gantry.admin.get(f"/runs/{live['run_id']}", expect=200).json["source"]
    assert source == {"type": "playground", "id": prompt["id"]}


def test_template_problems_are_400_and_record_no_run(gantry: Any) -> None:
    ws = _workspace_with_local_model(gantry)
    run = f"/workspaces/{ws}/playground/run"
    before = _runs(gantry)
    gantry.admin.post(
        run,
        json={"template": "{{ ''.__class__.__mro__ }}", "model": "local-1"},
        expect=400,
        code="template_error",
    )
    gantry.admin.post(
        run,
        json={"template": "{{ a }} {{ b }}", "variables": {"a": 1}, "model": "local-1"},
        expect=400,
        code="undeclared_variables",
    )
    prompt = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "k", "content": "{{ a }}", "variables": ["a"], "publish": True},
        expect=201,
    ).json
    problem = gantry.admin.post(
        run, json={"prompt_id": prompt["id"], "model": "local-1"}, expect=400
    ).json
    assert problem["code"] == "missing_variables"
    assert problem["errors"][0]["field"] == "body.variables.a"
    gantry.admin.post(
        run, json={"prompt_id": prompt["id"], "variables": {"a": 1}}, expect=400
    )  # no model: the prompt names none
    gantry.admin.post(
        run,
        json={"prompt_id": prompt["id"], "template": "x", "model": "local-1"},
        expect=400,
        code="validation_failed",
    )
    assert _runs(gantry) == before


def test_a_model_no_route_serves_fails_the_run(gantry: Any) -> None:
    ws = _workspace_with_local_model(gantry)
    result = gantry.admin.post(
        f"/workspaces/{ws}/playground/run",
        json={"template": "Hi", "model": "gpt-unrouted"},
        expect=200,
    ).json
    assert result["status"] == "failed"
    assert result["completion"] is None
    assert result["error"]["code"] == "model_not_found"
    run = gantry.admin.get(f"/runs/{result['run_id']}", expect=200).json
    assert run["status"] == "failed"
    assert run["error"]["code"] == "model_not_found"


def test_operators_run_and_viewers_do_not(gantry: Any) -> None:
    owner = gantry.user("owner")
    ws = gantry.workspace(owner)["id"]
    body = {"template": "Hi", "model": "local-1"}
    viewer = gantry.member(ws, owner, "viewer")
    viewer.session.post(
        f"/workspaces/{ws}/playground/run", json=body, expect=403, code="insufficient_role"
    )
    operator = gantry.bearer(gantry.api_key(ws, owner, role="operator")["key"])
    operator.post(f"/workspaces/{ws}/playground/run", json=body, expect=200)


def test_a_repeated_idempotency_key_replays_the_first_result(gantry: Any) -> None:
    ws = _workspace_with_local_model(gantry)
    body = {"template": "Hello {{ name }}.", "variables": {"name": "Ada"}, "model": "local-1"}
    key = {"Idempotency-Key": "try-1"}
    first = gantry.admin.post(
        f"/workspaces/{ws}/playground/run", json=body, headers=key, expect=200
    ).json
    before = _runs(gantry)
    again = gantry.admin.post(
        f"/workspaces/{ws}/playground/run", json=body, headers=key, expect=200
    ).json
    assert _runs(gantry) == before  # no second run, no second model call
    assert {k: v for k, v in again.items() if k != "latency_ms"} == {
        k: v for k, v in first.items() if k != "latency_ms"
    }
    calls = gantry.admin.get(f"/workspaces/{ws}/gateway/requests", expect=200).json["items"]
    assert len([c for c in calls if c.get("run_id") == first["run_id"]]) == 1
    changed = {**body, "variables": {"name": "Grace"}}
    gantry.admin.post(
        f"/workspaces/{ws}/playground/run",
        json=changed,
        headers=key,
        expect=409,
        code="idempotency_key_reused",
    )
