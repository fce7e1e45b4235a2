"""workflows: create, read, list, versions, step checks, soft delete, roles and audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from server import executor as server_executor
from server.domain import run_queue
from server.domain.unit import SYSTEM, unit_of_work
from server.storage.run_models import Run
from tests.server import gateway_setup

STEPS: list[dict[str, Any]] = [
    {
        "key": "draft",
        "type": "render",
        "template": "Reply to {{ customer }}",
        "input": {"customer": "${input.customer}"},
    },
    {
        "key": "reply",
        "type": "model",
        "model": "local-echo",
        "prompt": "${steps.draft.output.text}",
    },
]


def _workspace(gantry: Any) -> str:
    return str(gantry.workspace(gantry.admin)["id"])


def _create(gantry: Any, ws: str, **fields: Any) -> dict[str, Any]:
    body = {"key": "reply-flow", "steps": STEPS, **fields}
    created: dict[str, Any] = gantry.admin.post(
        f"/workspaces/{ws}/workflows", json=body, expect=201
    ).json
    return created


def _refused(gantry: Any, ws: str, steps: list[dict[str, Any]], code: str) -> dict[str, Any]:
    body: dict[str, Any] = gantry.admin.post(
        f"/workspaces/{ws}/workflows",
        json={"key": gantry.unique("refused-"), "steps": steps},
        expect=400,
        code=code,
    ).json
    return body


def _actions(gantry: Any, ws: str) -> list[str]:
    log = gantry.admin.get(f"/workspaces/{ws}/audit-log", query={"limit": 200}, expect=200).json
    return [event["action"] for event in reversed(log["items"])]


# ── create, read, list, versions ────────────────────────────────────────────────────────────


def test_create_makes_version_one(gantry: Any) -> None:
    ws = _workspace(gantry)
    response = gantry.admin.post(
        f"/workspaces/{ws}/workflows", json={"key": "reply-flow", "steps": STEPS}, expect=201
    )
    workflow = response.json
    assert response.headers["Location"] == f"/api/v1/workflows/{workflow['id']}"
    assert workflow["id"].startswith("wfl_")
    assert (workflow["version"], workflow["executor"], workflow["name"]) == (
        1,
        "server",
        "reply-flow",
    )
    # Steps come back as sent, each with its name (the key when none was given).
    assert workflow["steps"] == [{**step, "name": step["key"]} for step in STEPS]
    assert gantry.admin.get(f"/workflows/{workflow['id']}", expect=200).json == workflow
    versions = gantry.admin.get(f"/workflows/{workflow['id']}/versions", expect=200).json
    assert [(v["version"], v["steps"]) for v in versions["items"]] == [(1, workflow["steps"])]
    assert _actions(gantry, ws)[-1] == "workflow.created"


def test_changed_steps_make_a_version_and_equal_steps_none(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    wid = workflow["id"]
    renamed = gantry.admin.patch(f"/workflows/{wid}", json={"name": "Replies"}, expect=200).json
    assert (renamed["name"], renamed["version"]) == ("Replies", 1)
    same = gantry.admin.patch(f"/workflows/{wid}", json={"steps": STEPS}, expect=200).json
    assert same["version"] == 1
    shorter = [STEPS[0]]
    changed = gantry.admin.patch(f"/workflows/{wid}", json={"steps": shorter}, expect=200).json
    assert changed["version"] == 2 and [s["key"] for s in changed["steps"]] == ["draft"]
    page = gantry.admin.get(f"/workflows/{wid}/versions", expect=200).json
    assert [v["version"] for v in page["items"]] == [2, 1]
    assert page["items"][1]["steps"] == workflow["steps"]  # a version never changes
    walked = gantry.walk(gantry.admin, f"/workflows/{wid}/versions", limit=1, order="asc")
    assert [v["version"] for v in walked] == [1, 2]
    assert _actions(gantry, ws)[-3:] == ["workflow.updated"] * 3


def test_list_and_search(gantry: Any) -> None:
    ws = _workspace(gantry)
    a = _create(gantry, ws, key="reply-flow")
    b = _create(gantry, ws, key="triage", name="Ticket triage")
    listed = gantry.admin.get(f"/workspaces/{ws}/workflows", query={"include_total": True}).json
    assert [w["id"] for w in listed["items"]] == [b["id"], a["id"]] and listed["total"] == 2
    found = gantry.admin.get(f"/workspaces/{ws}/workflows", query={"q": "ticket"}).json
    assert [w["id"] for w in found["items"]] == [b["id"]]


def test_key_is_unique_until_deleted(gantry: Any) -> None:
    ws = _workspace(gantry)
    first = _create(gantry, ws)
    gantry.admin.post(
        f"/workspaces/{ws}/workflows",
        json={"key": "reply-flow", "steps": STEPS},
        expect=409,
        code="already_exists",
    )
    gantry.admin.delete(f"/workflows/{first['id']}", expect=204)
    for path in (f"/workflows/{first['id']}", f"/workflows/{first['id']}/versions"):
        gantry.admin.get(path, expect=404, code="not_found")
    assert _create(gantry, ws)["id"] != first["id"]
    assert "workflow.deleted" in _actions(gantry, ws)


def test_delete_is_refused_while_a_run_is_active(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    sessions = gantry.app.extensions["gantry"].database.write_sessionmaker
    with unit_of_work(sessions, SYSTEM) as uow:
        new = run_queue.NewRun(ws, "workflow", workflow["id"], workflow_version=1)
        run_id = run_queue.enqueue(uow, new).run.id
    body = gantry.admin.delete(
        f"/workflows/{workflow['id']}", expect=409, code="has_active_runs"
    ).json
    assert body["active_runs"] == 1
    with gantry.db() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.status = "cancelled"
        session.commit()
    gantry.admin.delete(f"/workflows/{workflow['id']}", expect=204)


def test_roles(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    operator = gantry.member(ws, gantry.admin, "operator").session
    operator.get(f"/workflows/{workflow['id']}/versions", expect=200)
    operator.patch(f"/workflows/{workflow['id']}", json={"name": "X"}, expect=403)
    gantry.user("stranger").session.get(f"/workflows/{workflow['id']}", expect=404)


# ── step checks ─────────────────────────────────────────────────────────────────────────────


def test_step_keys_are_unique(gantry: Any) -> None:
    ws = _workspace(gantry)
    body = _refused(gantry, ws, [STEPS[0], {**STEPS[1], "key": "draft"}], "duplicate_step_key")
    assert [e["field"] for e in body["errors"]] == ["body.steps[1].key"]


def test_each_step_has_the_fields_of_its_type(gantry: Any) -> None:
    ws = _workspace(gantry)
    body = _refused(
        gantry,
        ws,
        [
            {"key": "a", "type": "model", "prompt": "hi", "template": "x"},
            {"key": "b", "type": "render", "template": "x", "prompt_id": "prm_" + "A" * 24},
            {"key": "c", "type": "agent"},
            {"key": "d", "type": "render", "template": "x", "input": ["not", "an", "object"]},
        ],
        "validation_failed",
    )
    assert sorted((e["field"], e["message"]) for e in body["errors"]) == [
        ("body.steps[0].model", "is required for a model step"),
        ("body.steps[0].template", "is not read by a model step"),
        ("body.steps[1]", "a render step takes a template or a prompt_id (one of them)"),
        ("body.steps[2].agent_id", "is required for a agent step"),
        ("body.steps[3].input", "a render step's input is an object"),
    ]


def test_expressions_must_parse_and_look_back(gantry: Any) -> None:
    ws = _workspace(gantry)
    body = _refused(
        gantry,
        ws,
        [
            {"key": "a", "type": "transform", "input": {"x": "${steps.b.output}"}},
            {"key": "b", "type": "transform", "input": "${input.x"},
            {
                "key": "c",
                "type": "model",
                "model": "m",
                "prompt": "${steps.a.output}",
                "system": "${steps.c.output}",
            },
        ],
        "invalid_expression",
    )
    assert [(e["field"], e["message"]) for e in body["errors"]] == [
        (
            "body.steps[0].input.x",
            "${steps.b.output} names the step 'b', which is not an earlier step",
        ),
        ("body.steps[1].input", "${input.x does not parse: the expression has no closing '}'"),
        (
            "body.steps[2].system",
            "${steps.c.output} names the step 'c', which is not an earlier step",
        ),
    ]
    assert "${steps.b.output}" in body["detail"]


def test_templates_use_only_the_variables_their_input_gives(gantry: Any) -> None:
    ws = _workspace(gantry)
    step = {"key": "a", "type": "render", "template": "{{ who }} {{ what }}", "input": {"who": "x"}}
    body = _refused(gantry, ws, [step], "undeclared_variables")
    assert body["errors"][0]["field"] == "body.steps[0].template"
    broken = {**step, "template": "{% if %}", "input": {}}
    _refused(gantry, ws, [broken], "template_error")
    reserved = {**step, "template": "{{ x }}", "input": {"loop": 1, "x": 2}}
    body = _refused(gantry, ws, [reserved], "validation_failed")
    assert [e["field"] for e in body["errors"]] == ["body.steps[0].input.loop"]


def test_prompts_and_agents_must_be_the_workspaces(gantry: Any) -> None:
    ws, elsewhere = _workspace(gantry), _workspace(gantry)
    prompt = gantry.admin.post(
        f"/workspaces/{elsewhere}/prompts", json={"key": "p", "content": "hi"}, expect=201
    ).json
    agent = gantry.admin.post(
        f"/workspaces/{elsewhere}/agents",
        json={"key": "a", "model": "local-echo"},
        expect=201,
    ).json
    for step, field in (
        ({"key": "a", "type": "render", "prompt_id": prompt["id"]}, "prompt_id"),
        ({"key": "a", "type": "agent", "agent_id": agent["id"]}, "agent_id"),
    ):
        body = gantry.admin.post(
            f"/workspaces/{ws}/workflows",
            json={"key": "refused", "steps": [step]},
            expect=404,
            code="not_found",
        ).json
        assert [e["field"] for e in body["errors"]] == [f"body.steps[0].{field}"]


def test_a_refused_update_changes_nothing(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    gantry.admin.patch(
        f"/workflows/{workflow['id']}",
        json={"name": "New", "steps": [{"key": "x", "type": "transform", "input": "${nope}"}]},
        expect=400,
        code="invalid_expression",
    )
    assert gantry.admin.get(f"/workflows/{workflow['id']}", expect=200).json == workflow


# ── running (a test executor claims and executes, as ``gantry serve``'s threads do) ─────────


@pytest.fixture
def executor(app: Any) -> Iterator[None]:
    """The app's server executor (one thread), as ``gantry serve`` runs it, until the test ends."""
    running = server_executor.for_app(app.extensions["gantry"], threads=1).start()
    yield
    running.stop()


def _local_route(gantry: Any, ws: str) -> None:
    """A route sending ``local-*`` models to the built-in local provider."""
    backend = gateway_setup.backend(gantry.admin, ws)
    gateway_setup.route(gantry.admin, ws, backend["id"], model_patterns=["local-*"])


def test_a_run_is_queued_with_the_current_version(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    gantry.admin.patch(f"/workflows/{workflow['id']}", json={"steps": [STEPS[0]]}, expect=200)
    response = gantry.admin.post(
        f"/workflows/{workflow['id']}/runs", json={"input": {"customer": "Ada"}}, expect=202
    )
    run = response.json
    assert response.headers["Location"] == f"/api/v1/runs/{run['id']}"
    assert (run["status"], run["workflow_version"], run["input"]) == (
        "queued",
        2,
        {"customer": "Ada"},
    )
    assert run["source"] == {"type": "workflow", "id": workflow["id"]}
    assert _actions(gantry, ws)[-1] == "run.created"
    # Without a body: no input.
    bare = gantry.admin.post(f"/workflows/{workflow['id']}/runs", expect=202).json
    assert bare["input"] is None


def test_running_needs_the_operator_role(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    viewer = gantry.member(ws, gantry.admin, "viewer").session
    viewer.post(f"/workflows/{workflow['id']}/runs", json={}, expect=403)
    operator = gantry.member(ws, gantry.admin, "operator").session
    operator.post(f"/workflows/{workflow['id']}/runs", json={}, expect=202)


def test_an_idempotency_key_replays_the_first_run(gantry: Any) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws)
    path = f"/workflows/{workflow['id']}/runs"
    key = {"Idempotency-Key": "k-1"}
    first = gantry.admin.post(path, json={"input": 1}, headers=key, expect=202).json
    again = gantry.admin.post(path, json={"input": 1}, headers=key, expect=202).json
    assert again["id"] == first["id"]
    gantry.admin.post(
        path, json={"input": 2}, headers=key, expect=409, code="idempotency_key_reused"
    )


def test_wait_answers_the_finished_run_with_its_trace(gantry: Any, executor: None) -> None:
    ws = _workspace(gantry)
    _local_route(gantry, ws)
    workflow = _create(gantry, ws)
    response = gantry.admin.post(
        f"/workflows/{workflow['id']}/runs",
        json={"input": {"customer": "Ada"}},
        query={"wait": True},
        expect=201,
    )
    run = response.json
    assert run["status"] == "succeeded", run["error"]
    assert run["output"]["text"] == "You said: Reply to Ada"
    assert [(s["key"], s["status"]) for s in run["steps"]] == [
        ("draft", "succeeded"),
        ("reply", "succeeded"),
    ]
    assert run["usage"]["total_tokens"] > 0
    # The model call went through the gateway, billed to the run.
    log = gantry.admin.get(f"/workspaces/{ws}/gateway/requests", expect=200).json["items"]
    assert [entry["run_id"] for entry in log] == [run["id"]]


def test_wait_answers_202_for_a_run_that_waits_for_input(gantry: Any, executor: None) -> None:
    ws = _workspace(gantry)
    workflow = _create(gantry, ws, steps=[{"key": "ok", "type": "approval", "message": "Go?"}])
    path = f"/workflows/{workflow['id']}/runs"
    run = gantry.admin.post(path, query={"wait": True}, expect=202).json
    assert run["status"] == "waiting"
    gantry.admin.post(f"/runs/{run['id']}/input", json={"input": {"approved": True}}, expect=200)
    for _ in range(200):
        done = gantry.admin.get(f"/runs/{run['id']}", expect=200).json
        if done["status"] == "succeeded":
            break
        time.sleep(0.02)
    assert done["output"] == {"approved": True}


def test_wait_gives_up_at_the_timeout(make_app: Any, gantry_for: Any) -> None:
    app = make_app(run_wait_s=0.2)  # and no executor runs
    other = gantry_for(app)
    ws = _workspace(other)
    workflow = _create(other, ws)
    started = time.monotonic()
    run = other.admin.post(
        f"/workflows/{workflow['id']}/runs", query={"wait": True}, expect=202
    ).json
    assert run["status"] == "queued" and time.monotonic() - started < 5


def test_an_agent_runs_through_the_local_provider(gantry: Any, executor: None) -> None:
    ws = _workspace(gantry)
    _local_route(gantry, ws)
    agent = gantry.admin.post(
        f"/workspaces/{ws}/agents",
        json={"key": "helper", "instructions": "Be brief.", "model": "local-echo"},
        expect=201,
    ).json
    run = gantry.admin.post(
        f"/agents/{agent['id']}/runs",
        json={"input": "Where is my order?"},
        query={"wait": True},
        expect=201,
    ).json
    assert (run["status"], run["source"]) == ("succeeded", {"type": "agent", "id": agent["id"]})
    assert run["output"]["text"] == "You said: Where is my order?"
    assert [s["key"] for s in run["steps"]] == ["model"]
    gantry.admin.delete(f"/agents/{agent['id']}", expect=204)  # no run is active any more


def test_an_agents_variables_are_checked_before_queueing(gantry: Any) -> None:
    ws = _workspace(gantry)
    prompt = gantry.admin.post(
        f"/workspaces/{ws}/prompts",
        json={"key": "sys", "content": "Help {{ who }}.", "variables": ["who"], "publish": True},
        expect=201,
    ).json
    agent = gantry.admin.post(
        f"/workspaces/{ws}/agents",
        json={"key": "helper", "prompt_id": prompt["id"], "model": "local-echo"},
        expect=201,
    ).json
    path = f"/agents/{agent['id']}/runs"
    gantry.admin.post(path, json={"input": "x"}, expect=400, code="missing_variables")
    gantry.admin.post(
        path, json={"variables": {"who": 1, "extra": 2}}, expect=400, code="undeclared_variables"
    )
    gantry.admin.post(path, json={"variables": {"who": "Ada"}}, expect=202)
