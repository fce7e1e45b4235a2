"""The playground: a prompt rendered and sent to a model through the workspace's AI gateway,
recorded as a run.

Two parts, because the model call must hold no transaction (on SQLite a writer holds the whole
database, and the gateway writes its rate-limit hits and its request log in transactions of its
own):

1. ``prepare``, in the request's unit of work: choose the template (a prompt's live or given
   version, or an inline one), render it (400 for template problems), read the workspace's
   routes, and record the run (``source.type`` ``playground``), already ``running`` with a
   lease of this call, so no executor claims it;
2. ``execute``, once that has committed: the call through the gateway engine (billed to the run:
   the request log names it), then, in a unit of its own, the run's ``render`` and ``model``
   steps, its usage and its end (``succeeded``, or ``failed`` with the gateway's error).

A run goes ``queued → claimed → running → succeeded | failed`` like any server-executed run,
each move in its history; ``run.created`` is audited and every move announced.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from generated import models
from server.domain import prompt_templates, run_queue, run_states
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.gateway_config import load_routes
from server.domain.prompts import get_prompt
from server.domain.secrets import SecretBox
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, plain
from server.gateway.config import RouteConfig
from server.gateway.engine import Caller, Engine
from server.storage import prompts as prompt_rows
from server.storage import runs as run_rows
from server.storage.run_models import Run

SOURCE = "playground"
# How long the call may hold its run before the reaper takes the run back (the gateway's own
# backend timeouts end a call well before).
LEASE = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A recorded run and everything its model call needs, read before the call."""

    lease: run_queue.Lease
    workspace_id: str
    prompt_id: str | None
    version: int | None
    rendered: str
    model: str
    max_tokens: int | None
    caller: Caller
    routes: list[RouteConfig]


@dataclass(frozen=True, slots=True)
class Result:
    """What the playground answers (``PlaygroundResult``)."""

    run_id: str
    status: str
    prompt_id: str | None
    version: int | None
    rendered: str
    model: str
    completion: str | None
    finish_reason: str | None
    usage: dict[str, Any]
    error: dict[str, Any] | None
    latency_ms: int


def prepare(
    uow: UnitOfWork,
    workspace_id: str,
    request: models.PlaygroundRequest,
    *,
    credential_id: str | None,
    secrets_box: SecretBox,
    idempotency_key: str | None = None,
) -> Prepared | Result:
    """Render the prompt and record its run (``running``, held by this call); for a repeated
    ``Idempotency-Key``, the first call's result instead (409 while that call still runs)."""
    values: dict[str, Any] = dict(request.variables or {})
    prompt_id = optional_text(request.prompt_id)
    inline = optional_text(request.template)
    if (prompt_id is None) == (inline is None):
        raise Invalid(
            "Give either a prompt_id or a template.",
            errors=[("body", "needs exactly one of prompt_id and template")],
        )
    version: int | None = None
    if prompt_id is not None:
        content, declared, default_model, version = _published(
            uow, workspace_id, prompt_id, request.version
        )
        rendered = prompt_templates.render(
            content, declared, values, template_field="body.prompt_id"
        )
    else:
        if request.version is not None:
            raise Invalid(
                "A version names a version of a prompt, not of a template.",
                errors=[("body.version", "is only for a prompt_id")],
            )
        assert inline is not None
        default_model = None
        rendered = prompt_templates.render(inline, list(values), values)
    model = optional_text(request.model) or default_model
    if model is None:
        raise Invalid(
            "Name the model to ask: the prompt does not name one.",
            errors=[("body.model", "is required when the prompt names no model")],
        )
    routes = load_routes(uow, workspace_id, secrets=secrets_box)
    enqueued = run_queue.enqueue(
        uow,
        run_queue.NewRun(
            workspace_id=workspace_id,
            source_type=SOURCE,
            source_id=prompt_id,
            input={
                "prompt_id": prompt_id,
                "version": version,
                "template": inline,
                "model": model,
                "max_tokens": request.max_tokens,
            },
            variables=values,
            created_status=200,
            idempotency_key=idempotency_key,
            request_fingerprint=run_queue.fingerprint(
                SOURCE, request.model_dump(mode="json", exclude_none=True)
            ),
        ),
    )
    if enqueued.replayed:
        return _replayed(uow, enqueued.run)
    run = enqueued.run
    lease = run_queue.hold(uow, run, owner=f"{SOURCE}:{run.id}", lease_ttl=LEASE)
    return Prepared(
        lease=lease,
        workspace_id=workspace_id,
        prompt_id=prompt_id,
        version=version,
        rendered=rendered,
        model=model,
        max_tokens=request.max_tokens,
        caller=Caller(workspace_id=workspace_id, credential_id=credential_id, run_id=run.id),
        routes=routes,
    )


def execute(prepared: Prepared, *, engine: Engine, units: run_queue.Units) -> Result:
    """Call the model through the gateway, then record the outcome on the run."""
    body: dict[str, Any] = {
        "model": prepared.model,
        "messages": [{"role": "user", "content": prepared.rendered}],
    }
    if prepared.max_tokens is not None:
        body["max_tokens"] = prepared.max_tokens
    started = time.monotonic()
    answer = engine.serve("openai", prepared.caller, body, prepared.routes)
    try:
        reply: Mapping[str, Any] = answer.body if isinstance(answer.body, Mapping) else {}
    finally:
        answer.on_close()  # the request log's entry, with the run's id
    latency_ms = int((time.monotonic() - started) * 1000)
    completion, finish_reason, model, error = None, None, prepared.model, None
    usage = _usage(reply.get("usage"))
    if answer.status == 200:
        choice = _first(reply.get("choices"))
        found_message = choice.get("message")
        message: Mapping[str, Any] = found_message if isinstance(found_message, Mapping) else {}
        completion = str(message.get("content") or "")
        finish_reason = str(choice.get("finish_reason") or "stop")
        model = str(reply.get("model") or prepared.model)
    else:
        found = reply.get("error")
        problem: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        error = {
            "code": str(problem.get("code") or "model_error")[:64],
            "message": f"The gateway answered {answer.status}: "
            f"{problem.get('message') or 'no message'}",
        }
    lease = prepared.lease
    with units() as uow:
        run_queue.record_step(
            uow,
            lease,
            run_queue.StepWrite(
                key="render",
                name="Render the prompt",
                type="render",
                status="succeeded",
                input={"prompt_id": prepared.prompt_id, "version": prepared.version},
                output={"text": prepared.rendered},
            ),
        )
        run_queue.record_step(
            uow,
            lease,
            run_queue.StepWrite(
                key="model",
                name=f"Ask {prepared.model}",
                type="model",
                status="succeeded" if error is None else "failed",
                input={"model": prepared.model, "max_tokens": prepared.max_tokens},
                output=None if error else {"text": completion, "finish_reason": finish_reason},
                error=error,
                prompt_tokens=usage["prompt_tokens"],
                completion_tokens=usage["completion_tokens"],
                cost_usd=usage["cost_usd"],
            ),
        )
        run_queue.add_usage(
            uow,
            lease,
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            cost_usd=usage["cost_usd"],
        )
        outcome = (
            run_queue.Outcome(
                "succeeded",
                output={"text": completion, "finish_reason": finish_reason, "model": model},
            )
            if error is None
            else run_queue.Outcome("failed", error=error)
        )
        run = run_queue.complete(uow, lease, outcome)
    return Result(
        run_id=run.id,
        status=run.status,
        prompt_id=prepared.prompt_id,
        version=prepared.version,
        rendered=prepared.rendered,
        model=model,
        completion=completion,
        finish_reason=finish_reason,
        usage=usage,
        error=error,
        latency_ms=latency_ms,
    )


# ── the parts ───────────────────────────────────────────────────────────────────────────────


def _published(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, asked: Any
) -> tuple[str, list[str], str | None, int]:
    """A published version of the prompt: its content, variables, model and number."""
    prompt = get_prompt(uow, workspace_id, prompt_id)
    number = int(plain(asked)) if asked is not None else prompt.live_version
    if number is None:
        raise NotFound("The prompt has never been published.", code="not_published")
    version = prompt_rows.get_version(uow.db, prompt.id, number)
    if version is None:
        raise NotFound(f"Version {number} of this prompt not found.")
    return version.content, list(version.variables), version.model, number


def _replayed(uow: UnitOfWork, run: Run) -> Result:
    """The result the first call with this key answered, read back from its run."""
    if run.status not in run_states.TERMINAL:
        raise Conflict(
            "The first request with this Idempotency-Key is still running.",
            code="request_in_progress",
        )
    steps = {step.key: step for step in run_rows.steps_of(uow.db, run.id)}
    render = steps.get("render")
    output: Mapping[str, Any] = run.output if isinstance(run.output, Mapping) else {}
    asked: Mapping[str, Any] = run.input if isinstance(run.input, Mapping) else {}
    elapsed = (run.finished_at or run.updated_at) - (run.started_at or run.created_at)
    return Result(
        run_id=run.id,
        status=run.status,
        prompt_id=asked.get("prompt_id"),
        version=asked.get("version"),
        rendered=str((render.output or {}).get("text", "")) if render else "",
        model=str(output.get("model") or asked.get("model") or ""),
        completion=output.get("text"),
        finish_reason=output.get("finish_reason"),
        usage={
            "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "total_tokens": run.prompt_tokens + run.completion_tokens,
            "cost_usd": run.cost_usd,
        },
        error=run.error,
        latency_ms=max(0, int(elapsed.total_seconds() * 1000)),
    )


def _first(choices: Any) -> Mapping[str, Any]:
    first = choices[0] if isinstance(choices, list) and choices else {}
    return first if isinstance(first, Mapping) else {}


def _usage(found: Any) -> dict[str, Any]:
    usage: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
    prompt_tokens = int(usage.get("prompt_tokens") or 0)
    completion_tokens = int(usage.get("completion_tokens") or 0)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        # The gateway's request log prices the call; the answer carries tokens only.
        "cost_usd": 0.0,
    }
