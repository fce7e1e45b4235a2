"""The execution of one run's steps: a workflow's (the version the run recorded) or an agent's.

The seam with the run queue (``server.domain.run_queue``)::

    execute_run(units, run_id, lease, *, models)

The executor claims a run (``running`` already) and calls ``execute_run`` with a source of
units of work (each committed when its block ends), the lease, and ``models``: how model steps
reach the AI gateway (``GatewayModels`` over the app's gateway engine; tests bring a fake).
Every write goes through the queue's fenced functions under the lease (``record_step``,
``append_logs``, ``add_usage``, ``wait_for_input``, ``complete``), each in a short unit of
its own, and no transaction is open while a step works (a model call, a render): once the
lease is lost (``LeaseLost``) or the run ended meanwhile (``invalid_transition``), the engine
stops and writes nothing more.

How steps run:

* in order; before each, a cancellation asked for ends the run ``cancelled``;
* a step that already ``succeeded`` (under an earlier lease, before the executor died or the
  run waited) is not run again: its output is reused, so a re-queued run resumes;
* each step's fields are evaluated (``server.domain.expressions``) in the scope ``input``,
  ``variables``, ``run`` and ``steps`` (the earlier steps' ``{input, output, status}``), then
  it is recorded ``running`` with its evaluated input, worked, and recorded ``succeeded`` with
  its output (and usage, added to the run's) or ``failed`` with an error naming why; a failed
  step fails the run and the steps after it are recorded ``skipped``;
* an ``approval`` step records itself ``waiting`` and the run waits, releasing its lease;
  ``POST /runs/{run_id}/input`` stores the answer as the waiting step's output and the run is
  claimed again: the step then ends ``succeeded`` with that answer, or ``failed``
  (``approval_rejected``) when the answer says ``"approved": false``;
* an agent runs as steps of its own: ``instructions`` (a ``render`` of its prompt, when it has
  one) and ``model``; inside a workflow they are nested under the ``agent`` step (keys
  ``<step>.instructions``, ``<step>.model``) and the agent step's output is the model step's;
* the run's output is the last step's output.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.domain import expressions, prompt_templates, run_queue
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.gateway_config import load_routes
from server.domain.run_queue import Lease, LeaseLost, LogLine, Outcome, StepWrite, Units
from server.domain.run_states import TERMINAL
from server.domain.secrets import SecretBox
from server.domain.unit import UnitOfWork
from server.gateway.engine import Caller, Engine
from server.storage import definitions as definition_rows
from server.storage import prompts as prompt_rows
from server.storage import runs as run_rows
from server.storage.definition_models import Agent

__all__ = [
    "GatewayModels",
    "ModelAnswer",
    "ModelCall",
    "ModelFailure",
    "Models",
    "StepFailure",
    "agent_steps",
    "execute_run",
]

_log = logging.getLogger(__name__)

# The fields of a step evaluated as expressions before it runs.
EVALUATED_FIELDS = ("input", "variables", "prompt", "system", "message")


# ── model calls ─────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One model call of a step, billed to ``run_id`` in ``workspace_id``."""

    workspace_id: str
    run_id: str
    model: str
    prompt: str
    system: str | None = None
    max_tokens: int | None = None
    tools: Sequence[Mapping[str, Any]] = ()


@dataclass(frozen=True, slots=True)
class ModelAnswer:
    """What the model said, and what it cost."""

    text: str
    model: str
    finish_reason: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


class StepFailure(Exception):
    """Why a step failed: a stable ``code`` and a message for the trace."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def error(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ModelFailure(StepFailure):
    """The gateway refused or failed the call (no route, an upstream error, a rate limit)."""


class Models(Protocol):
    """How model steps reach a model (the AI gateway, or a test's fake)."""

    def complete(self, units: Units, call: ModelCall) -> ModelAnswer: ...


# ── the plan ────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class _Plan:
    """What a run executes, read once at its start."""

    workspace_id: str
    steps: list[dict[str, Any]]
    scope: dict[str, Any]
    # The steps already recorded under earlier leases, by key: {status, input, output}.
    recorded: dict[str, dict[str, Any]]
    # Agents the plan's agent steps name, read now: {agent_id: steps of the agent}.
    agents: dict[str, list[dict[str, Any]]]


class _Stop(Exception):
    """The run is no longer this lease's (lost, cancelled, ended): write nothing more."""


def agent_steps(agent: Agent) -> list[dict[str, Any]]:
    """An agent as steps: ``instructions`` (its prompt rendered with the run's variables, when
    it has one), then ``model``, with the run's input as the user message and the rendered
    prompt followed by the inline instructions as the system prompt."""
    steps: list[dict[str, Any]] = []
    system: list[str] = []
    if agent.prompt_id is not None:
        steps.append(
            {
                "key": "instructions",
                "name": "Instructions",
                "type": "render",
                "prompt_id": agent.prompt_id,
                "input": "${variables}",
            }
        )
        system.append("${steps.instructions.output.text}")
    if agent.instructions:
        system.append(agent.instructions.replace("${", "$${"))  # text, not expressions
    model_step: dict[str, Any] = {
        "key": "model",
        "name": agent.name,
        "type": "model",
        "model": agent.model,
        "prompt": "${input}",
        "tools": list(agent.tools),
    }
    if system:
        model_step["system"] = "\n\n".join(system)
    steps.append(model_step)
    return steps


def _plan(uow: UnitOfWork, run_id: str) -> _Plan | None:
    """The run's steps and scope; None when it is no longer running."""
    run = run_rows.lock(uow.db, run_id)
    if run is None:
        raise NotFound("Run not found.")
    if run.status in TERMINAL:
        return None
    agents: dict[str, list[dict[str, Any]]] = {}
    if run.source_type == "workflow":
        if run.source_id is None or run.workflow_version is None:
            raise StepFailure("definition_missing", "The run names no workflow version.")
        version = definition_rows.get_version(uow.db, run.source_id, run.workflow_version)
        if version is None:
            raise StepFailure(
                "definition_missing",
                f"Version {run.workflow_version} of workflow {run.source_id} does not exist.",
            )
        steps = [dict(step) for step in version.steps]
        for step in steps:
            if step["type"] == "agent" and step["agent_id"] not in agents:
                agents[step["agent_id"]] = _agent_plan(uow, run.workspace_id, step["agent_id"])
    elif run.source_type == "agent":
        if run.source_id is None:
            raise StepFailure("definition_missing", "The run names no agent.")
        steps = _agent_plan(uow, run.workspace_id, run.source_id)
    else:
        raise StepFailure(
            "unsupported_source",
            f"The server executes agents and workflows, not {run.source_type}.",
        )
    recorded = {
        step.key: {"status": step.status, "input": step.input, "output": step.output}
        for step in run_rows.steps_of(uow.db, run.id)
    }
    scope = {
        "input": run.input,
        "variables": dict(run.variables or {}),
        "run": {"id": run.id, "attempt": run.attempt},
        "steps": {},
    }
    return _Plan(run.workspace_id, steps, scope, recorded, agents)


def _agent_plan(uow: UnitOfWork, workspace_id: str, agent_id: str) -> list[dict[str, Any]]:
    agent = definition_rows.get_live(uow.db, Agent, agent_id, workspace_id)
    if agent is None:
        raise StepFailure("definition_missing", f"The agent {agent_id} does not exist.")
    return agent_steps(agent)


def _live_version(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> Any:
    prompt = prompt_rows.get_live(uow.db, prompt_id, workspace_id)
    if prompt is None:
        raise StepFailure("prompt_missing", f"The prompt {prompt_id} does not exist.")
    if prompt.live_version is None:
        raise StepFailure("not_published", f"The prompt {prompt.key!r} has no published version.")
    version = prompt_rows.get_version(uow.db, prompt.id, prompt.live_version)
    if version is None:
        raise StepFailure("prompt_missing", f"The live version of {prompt.key!r} is gone.")
    return version


# ── execution ───────────────────────────────────────────────────────────────────────────────


def execute_run(units: Units, run_id: str, lease: Lease, *, models: Models) -> None:
    """Run the steps of the claimed run ``run_id`` under ``lease``, to its end or its wait."""
    try:
        try:
            with units() as uow:
                plan = _plan(uow, run_id)
        except StepFailure as failure:
            error = failure.error()
            _write(units, lambda uow: _complete(uow, lease, "failed", error=error))
            return
        if plan is None:
            return
        _Execution(units, lease, models, plan).run()
    except _Stop:
        _log.info("run %s: stopped (the lease is no longer held)", run_id)


def _write(units: Units, change: Callable[[UnitOfWork], Any]) -> Any:
    """One fenced write in a unit of its own; ``_Stop`` when the lease no longer holds."""
    try:
        with units() as uow:
            return change(uow)
    except LeaseLost:
        raise _Stop from None
    except Conflict as refused:
        if refused.code == "invalid_transition":  # ended (cancelled) meanwhile
            raise _Stop from None
        raise


def _complete(
    uow: UnitOfWork,
    lease: Lease,
    status: str,
    *,
    output: Any = None,
    error: Mapping[str, Any] | None = None,
) -> None:
    run_queue.complete(uow, lease, Outcome(status, output=output, error=error))


def _log_line(text: str, channel: str = "system") -> LogLine:
    return LogLine(text=text[:10_000], channel=channel)


class _Execution:
    """One pass over a run's steps under one lease."""

    def __init__(self, units: Units, lease: Lease, models: Models, plan: _Plan) -> None:
        self.units = units
        self.lease = lease
        self.models = models
        self.plan = plan
        # Usage of the steps nested in each agent step, by the agent step's key.
        self.nested_usage: dict[str, _Usage] = {}

    def run(self) -> None:
        try:
            outcome = self._steps(self.plan.steps, self.plan.scope, prefix="", parent=None)
        except _Waiting:
            return
        except _Cancelled:
            _write(self.units, lambda uow: _complete(uow, self.lease, "cancelled"))
            return
        if isinstance(outcome, StepFailure):
            error = {"code": "step_failed", "message": outcome.message}
            _write(self.units, lambda uow: _complete(uow, self.lease, "failed", error=error))
        else:
            _write(self.units, lambda uow: _complete(uow, self.lease, "succeeded", output=outcome))

    # -- a list of steps (a workflow's, or an agent's nested under its step)

    def _steps(
        self,
        steps: list[dict[str, Any]],
        scope: dict[str, Any],
        *,
        prefix: str,
        parent: str | None,
    ) -> Any:
        """Run ``steps`` in order; the last one's output, or the ``StepFailure`` that ended
        them (the steps after it recorded ``skipped``)."""
        output: Any = None
        for index, step in enumerate(steps):
            key = prefix + step["key"]
            self._check_cancel()
            recorded = self.plan.recorded.get(key)
            if step["type"] == "approval":
                result = self._approval(step, key, scope, parent, recorded)
            elif recorded is not None and recorded["status"] == "succeeded":
                result = recorded
            else:
                result = self._run_step(step, key, scope, parent)
            scope["steps"][step["key"]] = result
            if result["status"] != "succeeded":
                failure = result["failure"]
                self._skip(steps[index + 1 :], prefix, parent)
                return failure
            output = result["output"]
        return output

    def _check_cancel(self) -> None:
        def read(uow: UnitOfWork) -> bool:
            return bool(run_queue.held(uow, self.lease).cancel_requested)

        if _write(self.units, read):
            raise _Cancelled

    def _run_step(
        self, step: dict[str, Any], key: str, scope: dict[str, Any], parent: str | None
    ) -> dict[str, Any]:
        name, kind = step.get("name") or step["key"], step["type"]
        started = time.monotonic()
        try:
            fields = _evaluated(step, scope)
        except StepFailure as failure:
            self._record(StepWrite(key, name, kind, "running", parent_key=parent))
            return self._fail(key, name, kind, parent, None, failure, started)
        step_input = _recorded_input(kind, fields)
        self._record(
            StepWrite(key, name, kind, "running", parent_key=parent, input=step_input),
            _log_line(f"step {key} ({kind}) started"),
        )
        try:
            output, usage = self._work(step, fields, key, scope)
        except StepFailure as failure:
            return self._fail(key, name, kind, parent, step_input, failure, started)
        elapsed = int((time.monotonic() - started) * 1000)
        lines = [_log_line(f"step {key} ({kind}) succeeded in {elapsed} ms")]
        if kind == "model" and isinstance(output, dict) and output.get("text"):
            lines.insert(0, _log_line(str(output["text"]), "agent"))
        write = StepWrite(
            key,
            name,
            kind,
            "succeeded",
            parent_key=parent,
            input=step_input,
            output=output,
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=usage.cost_usd,
        )
        # The run's usage is its model calls'; an agent step only shows its nested ones'.
        self._record(write, *lines, usage=usage if kind == "model" else None)
        return {"status": "succeeded", "input": step_input, "output": output}

    def _fail(
        self,
        key: str,
        name: str,
        kind: str,
        parent: str | None,
        step_input: Any,
        failure: StepFailure,
        started: float,
    ) -> dict[str, Any]:
        elapsed = int((time.monotonic() - started) * 1000)
        self._record(
            StepWrite(
                key,
                name,
                kind,
                "failed",
                parent_key=parent,
                input=step_input,
                error=failure.error(),
            ),
            _log_line(f"step {key} ({kind}) failed in {elapsed} ms: {failure.message}"),
        )
        where = StepFailure(failure.code, f"Step {key!r} failed: {failure.message}")
        return {"status": "failed", "input": step_input, "output": None, "failure": where}

    def _skip(self, steps: list[dict[str, Any]], prefix: str, parent: str | None) -> None:
        for step in steps:
            key = prefix + step["key"]
            recorded = self.plan.recorded.get(key)
            if recorded is not None and recorded["status"] == "succeeded":
                continue
            name = step.get("name") or step["key"]
            self._record(StepWrite(key, name, step["type"], "skipped", parent_key=parent))

    def _record(self, write: StepWrite, *lines: LogLine, usage: _Usage | None = None) -> None:
        if usage is not None and write.parent_key is not None:
            parent = write.parent_key
            self.nested_usage[parent] = self.nested_usage.get(parent, _Usage()) + usage

        def change(uow: UnitOfWork) -> None:
            run_queue.record_step(uow, self.lease, write)
            if usage is not None:
                run_queue.add_usage(
                    uow,
                    self.lease,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    cost_usd=usage.cost_usd,
                )
            if lines:
                run_queue.append_logs(uow, self.lease, lines)

        _write(self.units, change)

    # -- the step types

    def _work(
        self, step: dict[str, Any], fields: dict[str, Any], key: str, scope: dict[str, Any]
    ) -> tuple[Any, _Usage]:
        kind = step["type"]
        if kind == "render":
            return self._render(step, fields), _Usage()
        if kind == "model":
            return self._model(step, fields)
        if kind == "transform":
            return fields.get("input"), _Usage()
        if kind == "agent":
            return self._agent(step, fields, key, scope)
        raise StepFailure("unknown_step_type", f"Steps of type {kind!r} cannot run here.")

    def _render(self, step: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
        values = fields.get("input") or {}
        if not isinstance(values, Mapping):
            raise StepFailure("invalid_input", "A render step's input must be an object.")
        if "prompt_id" in step:

            def live(uow: UnitOfWork) -> tuple[str, list[str]]:
                version = _live_version(uow, self.plan.workspace_id, step["prompt_id"])
                return version.content, list(version.variables)

            with self.units() as uow:
                content, declared = live(uow)
        else:
            content, declared = step["template"], list(values)
        try:
            text = prompt_templates.render(
                content, declared, values, field="input", template_field="template"
            )
        except Invalid as refused:
            raise StepFailure(refused.code, refused.detail) from None
        return {"text": text}

    def _model(self, step: dict[str, Any], fields: dict[str, Any]) -> tuple[Any, _Usage]:
        prompt = fields.get("prompt")
        system = fields.get("system")
        call = ModelCall(
            workspace_id=self.plan.workspace_id,
            run_id=self.lease.run_id,
            model=str(step["model"]),
            prompt=prompt if isinstance(prompt, str) else _json_text(prompt),
            system=None
            if system is None
            else system
            if isinstance(system, str)
            else _json_text(system),
            max_tokens=step.get("max_tokens"),
            tools=tuple(step.get("tools") or ()),
        )
        answer = self.models.complete(self.units, call)
        output = {
            "text": answer.text,
            "model": answer.model,
            "finish_reason": answer.finish_reason,
            "tool_calls": answer.tool_calls,
        }
        return output, _Usage(answer.prompt_tokens, answer.completion_tokens, answer.cost_usd)

    def _agent(
        self, step: dict[str, Any], fields: dict[str, Any], key: str, scope: dict[str, Any]
    ) -> tuple[Any, _Usage]:
        variables = fields.get("variables") or {}
        if not isinstance(variables, Mapping):
            raise StepFailure("invalid_input", "An agent step's variables must be an object.")
        inner = {
            "input": fields.get("input"),
            "variables": dict(variables),
            "run": scope["run"],
            "steps": {},
        }
        agent_steps_ = self.plan.agents[step["agent_id"]]
        outcome = self._steps(agent_steps_, inner, prefix=f"{key}.", parent=key)
        if isinstance(outcome, StepFailure):
            raise StepFailure(outcome.code, outcome.message)
        return outcome, self.nested_usage.get(key, _Usage())

    def _approval(
        self,
        step: dict[str, Any],
        key: str,
        scope: dict[str, Any],
        parent: str | None,
        recorded: dict[str, Any] | None,
    ) -> dict[str, Any]:
        name = step.get("name") or step["key"]
        # Answered: the input operation settled the step (succeeded, or failed on a rejection),
        # or a worker recorded the answer on the waiting step.
        answered = recorded is not None and (
            recorded["status"] == "succeeded"
            or (recorded["status"] in ("waiting", "failed") and recorded["output"] is not None)
        )
        if recorded is None or not answered:
            started = time.monotonic()
            try:
                fields = _evaluated(step, scope)
            except StepFailure as failure:
                self._record(StepWrite(key, name, "approval", "running", parent_key=parent))
                return self._fail(key, name, "approval", parent, None, failure, started)
            step_input = _recorded_input("approval", fields)
            self._record(
                StepWrite(key, name, "approval", "waiting", parent_key=parent, input=step_input),
                _log_line(f"step {key} (approval) waits for input"),
            )
            _write(self.units, lambda uow: run_queue.wait_for_input(uow, self.lease, release=True))
            raise _Waiting
        assert recorded is not None
        answer = recorded["output"]
        step_input = recorded["input"]
        if isinstance(answer, Mapping) and answer.get("approved") is False:
            rejected = StepFailure("approval_rejected", "The approval was rejected.")
            if recorded["status"] == "failed":  # already settled by the input operation
                where = StepFailure(rejected.code, f"Step {key!r} failed: {rejected.message}")
                return {"status": "failed", "input": step_input, "output": None, "failure": where}
            return self._fail(key, name, "approval", parent, step_input, rejected, time.monotonic())
        if recorded["status"] != "succeeded":
            self._record(
                StepWrite(
                    key,
                    name,
                    "approval",
                    "succeeded",
                    parent_key=parent,
                    input=step_input,
                    output=answer,
                ),
                _log_line(f"step {key} (approval) answered"),
            )
        return {"status": "succeeded", "input": step_input, "output": answer}


class _Waiting(Exception):
    """The run waits for input: this pass ends without completing it."""


class _Cancelled(Exception):
    """A cancellation was asked for: the run ends ``cancelled``."""


@dataclass(frozen=True, slots=True)
class _Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: _Usage) -> _Usage:
        return _Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cost_usd + other.cost_usd,
        )


def _evaluated(step: dict[str, Any], scope: Mapping[str, Any]) -> dict[str, Any]:
    """The step's expression fields, evaluated; ``expression_error`` names a failed lookup."""
    try:
        return {
            name: expressions.evaluate(step[name], scope)
            for name in EVALUATED_FIELDS
            if name in step
        }
    except expressions.EvaluationError as failed:
        raise StepFailure("expression_error", f"{failed.expression}: {failed.reason}") from None


def _recorded_input(kind: str, fields: Mapping[str, Any]) -> Any:
    """What the trace shows a step was given."""
    if kind in ("render", "transform"):
        return fields.get("input")
    return {name: value for name, value in fields.items()} or None


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


# ── the AI gateway ──────────────────────────────────────────────────────────────────────────


class GatewayModels:
    """Model steps through the workspace's AI gateway, as any client's call: its routes pick
    the provider (the built-in ``local`` one included), and the call is rate-limited, cached
    and written to the request log with the run's id, so its usage is the run's."""

    def __init__(self, engine: Engine, secrets: SecretBox) -> None:
        self.engine = engine
        self.secrets = secrets

    def complete(self, units: Units, call: ModelCall) -> ModelAnswer:
        with units() as uow:
            routes = load_routes(uow, call.workspace_id, secrets=self.secrets)
        caller = Caller(workspace_id=call.workspace_id, credential_id=None, run_id=call.run_id)
        answer = self.engine.serve("openai", caller, _chat_body(call), routes)
        try:
            body = answer.body if isinstance(answer.body, Mapping) else {}
        finally:
            answer.on_close()
        if answer.status != 200:
            found = body.get("error")
            error: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
            raise ModelFailure(
                str(error.get("code") or "model_error"),
                f"The gateway answered {answer.status}: {error.get('message') or 'no message'}",
            )
        return _model_answer(body, call.model)


def _chat_body(call: ModelCall) -> dict[str, Any]:
    """An OpenAI chat completion request for ``call``."""
    messages: list[dict[str, Any]] = []
    if call.system:
        messages.append({"role": "system", "content": call.system})
    messages.append({"role": "user", "content": call.prompt})
    body: dict[str, Any] = {"model": call.model, "messages": messages}
    if call.max_tokens is not None:
        body["max_tokens"] = call.max_tokens
    if call.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": tool["name"],
                    "description": tool.get("description") or "",
                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}},
                },
            }
            for tool in call.tools
        ]
    return body


def _model_answer(body: Mapping[str, Any], model: str) -> ModelAnswer:
    """The parts of a ``chat.completion`` a step keeps."""
    choices = body.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else {}
    message = choice.get("message") if isinstance(choice, Mapping) else None
    message = message if isinstance(message, Mapping) else {}
    calls = [
        {
            "id": c.get("id"),
            "name": (c.get("function") or {}).get("name"),
            "arguments": (c.get("function") or {}).get("arguments"),
        }
        for c in message.get("tool_calls") or []
        if isinstance(c, Mapping)
    ]
    found = body.get("usage")
    usage: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    return ModelAnswer(
        text=str(message.get("content") or ""),
        model=str(body.get("model") or model),
        finish_reason=str(choice.get("finish_reason") or "stop"),
        tool_calls=calls,
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        # The gateway knows a price only for the free local model; others count tokens only.
        cost_usd=0.0,
    )
