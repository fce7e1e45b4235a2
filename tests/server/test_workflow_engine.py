"""The workflow engine on a real database and run queue, with a fake model: steps, expressions,
failures, approvals, agents, resumption, cancellation and lost leases."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from generated import models
from server.domain import agents, prompts, run_queue, runs, workflow_engine, workflows
from server.domain.run_queue import Lease
from server.domain.unit import SYSTEM, UnitOfWork, unit_of_work
from server.domain.workflow_engine import ModelAnswer, ModelCall, ModelFailure
from server.security import new_id
from server.storage import Database
from server.storage import runs as run_rows
from server.storage.models import Workspace
from server.storage.run_models import Run, RunLog

Units = Callable[[], AbstractContextManager[UnitOfWork]]


class FakeModels:
    """Answers ``echo: <prompt>`` (3 prompt tokens, 2 completion tokens), or fails on demand."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.calls: list[ModelCall] = []
        self.fail_with = fail_with

    def complete(self, units: Units, call: ModelCall) -> ModelAnswer:
        self.calls.append(call)
        if self.fail_with is not None:
            raise self.fail_with
        return ModelAnswer(f"echo: {call.prompt}", call.model, "stop", [], 3, 2, 0.0)


@pytest.fixture
def units(storage_db: Database) -> Units:
    def unit() -> AbstractContextManager[UnitOfWork]:
        return unit_of_work(storage_db.write_sessionmaker, SYSTEM)

    return unit


@pytest.fixture
def later(storage_db: Database) -> Units:
    """Units five minutes from now (past any lease taken now)."""

    def unit() -> AbstractContextManager[UnitOfWork]:
        moment = datetime.now(UTC) + timedelta(minutes=5)
        return unit_of_work(storage_db.write_sessionmaker, SYSTEM, now=moment)

    return unit


@pytest.fixture
def ws(units: Units) -> str:
    now = datetime.now(UTC)
    with units() as uow:
        workspace = Workspace(
            id=new_id("ws_"), name="W", slug=new_id("w").lower().replace("_", "-"), settings={}, created_at=now,
            updated_at=now,
        )  # fmt: skip
        uow.db.add(workspace)
    return workspace.id


def _workflow(units: Units, ws: str, steps: list[dict[str, Any]]) -> str:
    request = models.WorkflowCreate.model_validate(
        {"key": new_id("w").lower().replace("_", "-"), "steps": steps}
    )
    with units() as uow:
        return workflows.create_workflow(uow, ws, request).id


def _agent(units: Units, ws: str, **fields: Any) -> str:
    body = {"key": new_id("a").lower().replace("_", "-"), "model": "local-echo", **fields}
    with units() as uow:
        return agents.create_agent(uow, ws, models.AgentCreate.model_validate(body)).id


def _enqueue(units: Units, ws: str, kind: str, source_id: str, **fields: Any) -> str:
    version = 1 if kind == "workflow" else None
    with units() as uow:
        new = run_queue.NewRun(ws, kind, source_id, workflow_version=version, **fields)
        return run_queue.enqueue(uow, new).run.id


def _claim(units: Units) -> Lease:
    with units() as uow:
        (lease,) = run_queue.claim_next(uow, owner="test-executor")
    return lease


def _run(units: Units, ws: str, kind: str, source_id: str, fake: FakeModels, **fields: Any) -> Run:
    run_id = _enqueue(units, ws, kind, source_id, **fields)
    workflow_engine.execute_run(units, run_id, _claim(units), models=fake)
    return _read(units, run_id)


def _read(units: Units, run_id: str) -> Run:
    with units() as uow:
        run = uow.db.get(Run, run_id)
        assert run is not None
        uow.db.expunge(run)
        return run


def _steps(units: Units, run_id: str) -> dict[str, Any]:
    with units() as uow:
        found = run_rows.steps_of(uow.db, run_id)
        for step in found:
            uow.db.expunge(step)
    return {step.key: step for step in found}


TWO_STEPS: list[dict[str, Any]] = [
    {
        "key": "draft",
        "type": "render",
        "template": "Reply to {{ customer }} about {{ topic }}",
        "input": {"customer": "${input.customer}", "topic": "${input.topic}"},
    },
    {
        "key": "reply",
        "type": "model",
        "model": "local-echo",
        "prompt": "${steps.draft.output.text}",
    },
]


def test_a_two_step_workflow_runs_its_steps_in_order(units: Units, ws: str) -> None:
    fake = FakeModels()
    wid = _workflow(units, ws, TWO_STEPS)
    run = _run(units, ws, "workflow", wid, fake, input={"customer": "Ada", "topic": "billing"})
    assert run.status == "succeeded", run.error
    assert run.output["text"] == "echo: Reply to Ada about billing"
    assert (run.prompt_tokens, run.completion_tokens) == (3, 2)  # the model step's usage
    steps = _steps(units, run.id)
    assert list(steps) == ["draft", "reply"]
    draft, reply = steps["draft"], steps["reply"]
    assert draft.input == {"customer": "Ada", "topic": "billing"}
    assert draft.output == {"text": "Reply to Ada about billing"}
    assert reply.input == {"prompt": "Reply to Ada about billing"}
    assert (reply.status, reply.prompt_tokens, reply.completion_tokens) == ("succeeded", 3, 2)
    assert fake.calls[0].run_id == run.id and fake.calls[0].workspace_id == ws
    with units() as uow:
        logs = [
            line.text for line in uow.db.query(RunLog).filter_by(run_id=run.id).order_by(RunLog.seq)
        ]
    assert logs[0] == "step draft (render) started"
    assert "echo: Reply to Ada about billing" in logs


def test_transform_reshapes_earlier_outputs(units: Units, ws: str) -> None:
    steps = [
        {"key": "first", "type": "transform", "input": {"n": "${input.n}", "items": [1, 2]}},
        {
            "key": "second",
            "type": "transform",
            "input": {"count": "${steps.first.output.items}", "note": "n=${steps.first.output.n}"},
        },
    ]
    run = _run(units, ws, "workflow", _workflow(units, ws, steps), FakeModels(), input={"n": 4})
    assert run.status == "succeeded"
    assert run.output == {"count": [1, 2], "note": "n=4"}


def test_a_failed_lookup_fails_the_step_and_skips_the_rest(units: Units, ws: str) -> None:
    fake = FakeModels()
    run = _run(units, ws, "workflow", _workflow(units, ws, TWO_STEPS), fake, input={})
    assert run.status == "failed"
    assert run.error == {
        "code": "step_failed",
        "message": "Step 'draft' failed: ${input.customer}: input has no key 'customer'",
    }
    steps = _steps(units, run.id)
    assert (steps["draft"].status, steps["draft"].error["code"]) == ("failed", "expression_error")
    assert steps["reply"].status == "skipped"
    assert fake.calls == []


def test_a_model_failure_fails_the_run(units: Units, ws: str) -> None:
    fake = FakeModels(ModelFailure("model_not_found", "No route matches the model."))
    wid = _workflow(units, ws, TWO_STEPS)
    run = _run(units, ws, "workflow", wid, fake, input={"customer": "A", "topic": "b"})
    assert run.status == "failed"
    step = _steps(units, run.id)["reply"]
    assert step.error == {"code": "model_not_found", "message": "No route matches the model."}


def test_an_approval_waits_for_input_then_goes_on(units: Units, ws: str) -> None:
    fake = FakeModels()
    steps = [
        {"key": "ask", "type": "model", "model": "m", "prompt": "${input.q}"},
        {"key": "check", "type": "approval", "message": "Send ${steps.ask.output.text}?"},
        {"key": "done", "type": "transform", "input": "${steps.check.output.comment}"},
    ]
    wid = _workflow(units, ws, steps)
    run = _run(units, ws, "workflow", wid, fake, input={"q": "hi"})
    assert run.status == "waiting" and run.lease_owner is None
    waiting = _steps(units, run.id)["check"]
    assert (waiting.status, waiting.input) == ("waiting", {"message": "Send echo: hi?"})
    with units() as uow:
        runs.submit_input(uow, ws, run.id, {"approved": True, "comment": "fine"})
    workflow_engine.execute_run(units, run.id, _claim(units), models=fake)
    done = _read(units, run.id)
    assert (done.status, done.output) == ("succeeded", "fine")
    assert len(fake.calls) == 1  # the model step before the wait was not run again


def test_a_rejected_approval_fails_the_run(units: Units, ws: str) -> None:
    wid = _workflow(units, ws, [{"key": "check", "type": "approval"}])
    fake = FakeModels()
    run = _run(units, ws, "workflow", wid, fake)
    with units() as uow:
        runs.submit_input(uow, ws, run.id, {"approved": False})
    rejected = _steps(units, run.id)["check"]  # settled at once, before an executor resumes
    assert (rejected.status, rejected.error["code"]) == ("failed", "approval_rejected")
    workflow_engine.execute_run(units, run.id, _claim(units), models=fake)
    done = _read(units, run.id)
    assert done.status == "failed"
    assert _steps(units, run.id)["check"].status == "failed"
    assert done.error == {
        "code": "step_failed",
        "message": "Step 'check' failed: The approval was rejected.",
    }


def test_an_agent_runs_as_a_model_step_with_its_instructions(units: Units, ws: str) -> None:
    fake = FakeModels()
    aid = _agent(units, ws, instructions="Be brief.", tools=[{"name": "lookup"}])
    run = _run(units, ws, "agent", aid, fake, input="Where is my order?")
    assert run.status == "succeeded"
    assert run.output["text"] == "echo: Where is my order?"
    (call,) = fake.calls
    assert (call.system, call.prompt, call.model) == (
        "Be brief.",
        "Where is my order?",
        "local-echo",
    )
    assert [tool["name"] for tool in call.tools] == ["lookup"]
    assert list(_steps(units, run.id)) == ["model"]


def test_an_agents_prompt_is_rendered_with_the_run_variables(units: Units, ws: str) -> None:
    request = models.PromptCreate.model_validate(
        {
            "key": "system",
            "content": "You help {{ who }}.",
            "variables": ["who"],
            "model": "local-echo",
            "publish": True,
        }
    )
    with units() as uow:
        prompt_id = prompts.create_prompt(uow, ws, request).id
    aid = _agent(units, ws, prompt_id=prompt_id, instructions="Costs ${input.n}.")
    fake = FakeModels()
    run = _run(units, ws, "agent", aid, fake, input={"q": 1}, variables={"who": "Ada"})
    assert run.status == "succeeded", run.error
    (call,) = fake.calls
    # The rendered prompt, then the inline instructions as written (no expressions in them).
    assert (call.system, call.prompt) == ("You help Ada.\n\nCosts ${input.n}.", '{"q":1}')
    steps = _steps(units, run.id)
    assert steps["instructions"].output == {"text": "You help Ada."}
    # A missing variable fails the render step, not the whole engine.
    failed = _run(units, ws, "agent", aid, fake, input="x")
    assert failed.status == "failed"
    assert _steps(units, failed.id)["instructions"].error["code"] == "missing_variables"


def test_an_agent_step_nests_the_agents_steps(units: Units, ws: str) -> None:
    aid = _agent(units, ws, instructions="Be brief.")
    steps = [{"key": "ask", "type": "agent", "agent_id": aid, "input": "${input.q}"}]
    fake = FakeModels()
    run = _run(units, ws, "workflow", _workflow(units, ws, steps), fake, input={"q": "hello"})
    assert run.status == "succeeded", run.error
    found = _steps(units, run.id)
    assert list(found) == ["ask", "ask.model"]
    assert found["ask.model"].parent_step_id == found["ask"].id
    assert found["ask"].output == found["ask.model"].output
    assert (found["ask"].prompt_tokens, run.prompt_tokens) == (3, 3)  # counted once in the run


def test_a_requeued_run_resumes_after_its_last_succeeded_step(
    units: Units, later: Units, ws: str
) -> None:
    class Crash(Exception):
        pass

    wid = _workflow(units, ws, TWO_STEPS)
    run_id = _enqueue(units, ws, "workflow", wid, input={"customer": "A", "topic": "b"})
    first = _claim(units)
    with pytest.raises(Crash):  # the executor dies during the model call
        workflow_engine.execute_run(units, run_id, first, models=FakeModels(Crash()))
    with later() as uow:
        run_queue.reap(uow)  # the lease expired: queued again
    second = _claim(units)
    assert second.attempt == 2
    fake = FakeModels()
    workflow_engine.execute_run(units, run_id, second, models=fake)
    run = _read(units, run_id)
    assert run.status == "succeeded" and run.attempt == 2
    steps = _steps(units, run_id)
    assert steps["draft"].attempt == 1  # written once, by the first attempt
    assert steps["reply"].attempt == 2
    # The first holder can write nothing any more: its engine stops quietly.
    workflow_engine.execute_run(units, run_id, first, models=FakeModels())
    assert _read(units, run_id).status == "succeeded"


def test_a_cancellation_stops_before_the_next_step(units: Units, ws: str) -> None:
    wid = _workflow(units, ws, TWO_STEPS)
    run_id = _enqueue(units, ws, "workflow", wid, input={"customer": "A", "topic": "b"})
    lease = _claim(units)
    with units() as uow:
        runs.cancel_run(uow, ws, run_id)  # running: asks the holder to stop
    fake = FakeModels()
    workflow_engine.execute_run(units, run_id, lease, models=fake)
    assert _read(units, run_id).status == "cancelled"
    assert fake.calls == [] and _steps(units, run_id) == {}
