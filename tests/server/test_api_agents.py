"""agents: create, read, list, update, soft delete, the instruction and model rules, roles and
audit."""

from __future__ import annotations

from typing import Any

from server.domain import agents, run_queue
from server.domain.errors import Conflict
from server.domain.unit import SYSTEM, unit_of_work
from server.storage.run_models import Run

BASE: dict[str, Any] = {
    "key": "triage",
    "instructions": "Sort the ticket.",
    "model": "local-echo",
}


def _workspace(gantry: Any) -> str:
    return str(gantry.workspace(gantry.admin)["id"])


def _create(gantry: Any, ws: str, **fields: Any) -> dict[str, Any]:
    created: dict[str, Any] = gantry.admin.post(
        f"/workspaces/{ws}/agents", json={**BASE, **fields}, expect=201
    ).json
    return created


def _prompt(gantry: Any, ws: str, **fields: Any) -> dict[str, Any]:
    body = {"key": "system", "content": "You help {{ who }}.", "variables": ["who"], **fields}
    prompt: dict[str, Any] = gantry.admin.post(
        f"/workspaces/{ws}/prompts", json=body, expect=201
    ).json
    return prompt


def _actions(gantry: Any, ws: str) -> list[str]:
    log = gantry.admin.get(f"/workspaces/{ws}/audit-log", query={"limit": 200}, expect=200).json
    return [event["action"] for event in reversed(log["items"])]


def test_create_read_and_list(gantry: Any) -> None:
    ws = _workspace(gantry)
    response = gantry.admin.post(
        f"/workspaces/{ws}/agents",
        json={**BASE, "tools": [{"name": "lookup"}, {"name": "note", "description": "Notes."}]},
        expect=201,
    )
    agent = response.json
    assert response.headers["Location"] == f"/api/v1/agents/{agent['id']}"
    assert agent["id"].startswith("agt_")
    assert (agent["name"], agent["executor"], agent["prompt_id"]) == ("triage", "server", None)
    assert agent["tools"] == [
        {"name": "lookup", "description": "", "parameters": {"type": "object", "properties": {}}},
        {
            "name": "note",
            "description": "Notes.",
            "parameters": {"type": "object", "properties": {}},
        },
    ]
    assert gantry.admin.get(f"/agents/{agent['id']}", expect=200).json == agent
    other = _create(gantry, ws, key="writer", name="Copy writer")
    listed = gantry.admin.get(f"/workspaces/{ws}/agents", expect=200).json["items"]
    assert [a["id"] for a in listed] == [other["id"], agent["id"]]
    found = gantry.admin.get(f"/workspaces/{ws}/agents", query={"q": "COPY"}, expect=200).json
    assert [a["id"] for a in found["items"]] == [other["id"]]
    assert _actions(gantry, ws)[-2:] == ["agent.created", "agent.created"]


def test_key_is_unique_until_deleted(gantry: Any) -> None:
    ws = _workspace(gantry)
    first = _create(gantry, ws)
    gantry.admin.post(f"/workspaces/{ws}/agents", json=BASE, expect=409, code="already_exists")
    gantry.admin.delete(f"/agents/{first['id']}", expect=204)
    gantry.admin.get(f"/agents/{first['id']}", expect=404, code="not_found")
    gantry.admin.patch(f"/agents/{first['id']}", json={"name": "X"}, expect=404)
    assert gantry.admin.get(f"/workspaces/{ws}/agents", expect=200).json["items"] == []
    assert _create(gantry, ws)["id"] != first["id"]
    assert "agent.deleted" in _actions(gantry, ws)


def test_a_prompt_must_be_the_workspaces(gantry: Any) -> None:
    ws, elsewhere = _workspace(gantry), _workspace(gantry)
    foreign = _prompt(gantry, elsewhere)
    body = gantry.admin.post(
        f"/workspaces/{ws}/agents",
        json={**BASE, "prompt_id": foreign["id"]},
        expect=404,
        code="not_found",
    ).json
    assert [e["field"] for e in body["errors"]] == ["body.prompt_id"]
    own = _prompt(gantry, ws)
    agent = _create(gantry, ws, prompt_id=own["id"])  # with inline instructions as well
    assert (agent["prompt_id"], agent["instructions"]) == (own["id"], BASE["instructions"])


def test_a_model_is_required(gantry: Any) -> None:
    ws = _workspace(gantry)
    gantry.admin.post(
        f"/workspaces/{ws}/agents",
        json={"key": "bare", "instructions": "Hi."},
        expect=400,
        code="validation_failed",
    )
    agent = _create(gantry, ws)
    gantry.admin.patch(f"/agents/{agent['id']}", json={"model": None}, expect=400)
    # The prompt is the agent's for good.
    gantry.admin.patch(f"/agents/{agent['id']}", json={"prompt_id": None}, expect=400)


def test_update_changes_only_what_is_sent(gantry: Any) -> None:
    ws = _workspace(gantry)
    agent = _create(gantry, ws, description="Old.")
    changed = gantry.admin.patch(
        f"/agents/{agent['id']}", json={"description": None, "executor": "worker"}, expect=200
    ).json
    assert (changed["description"], changed["executor"]) == (None, "worker")
    assert (changed["instructions"], changed["model"]) == (agent["instructions"], agent["model"])
    cleared = gantry.admin.patch(
        f"/agents/{agent['id']}", json={"instructions": None, "model": "other"}, expect=200
    ).json
    assert (cleared["instructions"], cleared["model"], cleared["name"]) == (None, "other", "triage")
    assert _actions(gantry, ws)[-1] == "agent.updated"


def test_roles(gantry: Any) -> None:
    ws = _workspace(gantry)
    agent = _create(gantry, ws)
    viewer = gantry.member(ws, gantry.admin, "viewer").session
    operator = gantry.member(ws, gantry.admin, "operator").session
    viewer.get(f"/agents/{agent['id']}", expect=200)
    operator.post(f"/workspaces/{ws}/agents", json={**BASE, "key": "x"}, expect=403)
    operator.patch(f"/agents/{agent['id']}", json={"name": "X"}, expect=403)
    operator.delete(f"/agents/{agent['id']}", expect=403)
    stranger = gantry.user("stranger").session
    stranger.get(f"/agents/{agent['id']}", expect=404)


def test_delete_is_refused_while_a_run_is_active(gantry: Any) -> None:
    ws = _workspace(gantry)
    agent = _create(gantry, ws)
    run_id = _add_run(gantry, ws, agent["id"], status="running")
    body = gantry.admin.delete(f"/agents/{agent['id']}", expect=409, code="has_active_runs").json
    assert body["active_runs"] == 1
    _set_status(gantry, run_id, "succeeded")
    gantry.admin.delete(f"/agents/{agent['id']}", expect=204)


def test_refuse_while_active_counts_only_active_runs(gantry: Any) -> None:
    ws = _workspace(gantry)
    agent = _create(gantry, ws)
    for status in ("succeeded", "failed", "cancelled", "timed_out"):
        _add_run(gantry, ws, agent["id"], status=status)
    sessions = gantry.app.extensions["gantry"].database.write_sessionmaker
    with unit_of_work(sessions, SYSTEM) as uow:
        agents.refuse_while_active(uow, ws, "agent", agent["id"])  # nothing active
    _add_run(gantry, ws, agent["id"], status="waiting")
    with unit_of_work(sessions, SYSTEM) as uow:
        try:
            agents.refuse_while_active(uow, ws, "agent", agent["id"])
        except Conflict as refused:
            assert refused.code == "has_active_runs"
        else:
            raise AssertionError("a waiting run did not hold the agent")


# ── runs put in place directly (the run operations have their own tests) ────────────────────


def _add_run(gantry: Any, ws: str, agent_id: str, *, status: str) -> str:
    sessions = gantry.app.extensions["gantry"].database.write_sessionmaker
    with unit_of_work(sessions, SYSTEM) as uow:
        run = run_queue.enqueue(uow, run_queue.NewRun(ws, "agent", agent_id)).run
    _set_status(gantry, run.id, status)
    return run.id


def _set_status(gantry: Any, run_id: str, status: str) -> None:
    with gantry.db() as session:
        run = session.get(Run, run_id)
        assert run is not None
        run.status = status
        session.commit()
