"""Agents: a model, its system prompt (a prompt of the workspace, inline instructions, or
both) and its tools.

The rules:

* ``key`` is unique among a workspace's agents that are not deleted (409 ``already_exists``);
  deleting is soft, frees the key, and is refused while a run of the agent is active (409
  ``has_active_runs``);
* a prompt is the workspace's (404 otherwise), and the agent's for good: it is set when the
  agent is created, never changed;
* a run's variables are the prompt's own, checked against its live version before the run is
  queued (400 ``missing_variables``, ``undeclared_variables``).

Every rule the schema can state is left to it: what it accepts, these functions accept.
Every change is audited (``agent.*``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain import prompt_templates, run_queue
from server.domain.errors import Conflict, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, plain, text
from server.security import new_id
from server.storage import definitions as definition_rows
from server.storage import prompts as prompt_rows
from server.storage import rows
from server.storage.definition_models import Agent

KEY_TAKEN = "The workspace already has an agent with this key."
# What a tool without parameters takes: nothing.
NO_PARAMETERS: dict[str, Any] = {"type": "object", "properties": {}}


def list_agents(
    uow: UnitOfWork, workspace_id: str, *, q: str | None, window: Window
) -> tuple[Sequence[Agent], int | None]:
    """The workspace's agents whose key or name contains ``q``, in ``window``, and their
    count if asked."""
    found = definition_rows.list_definitions(
        uow.db,
        Agent,
        workspace_id,
        q=q,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    if not window.include_total:
        return found, None
    return found, definition_rows.count_definitions(uow.db, Agent, workspace_id, q=q)


def get_agent(uow: UnitOfWork, workspace_id: str, agent_id: str) -> Agent:
    """The workspace's agent (not deleted), or 404."""
    agent = definition_rows.get_live(uow.db, Agent, agent_id, workspace_id)
    if agent is None:
        raise NotFound("Agent not found.")
    return agent


def create_agent(uow: UnitOfWork, workspace_id: str, request: models.AgentCreate) -> Agent:
    """A new agent of the workspace."""
    key = text(request.key)
    prompt_id = optional_text(request.prompt_id)
    model = text(request.model)
    if prompt_id is not None and prompt_rows.get_live(uow.db, prompt_id, workspace_id) is None:
        raise NotFound(
            "Prompt not found.",
            errors=[("body.prompt_id", f"{prompt_id} is not a prompt of this workspace")],
        )
    if definition_rows.find_live(uow.db, Agent, workspace_id, key) is not None:
        raise Conflict(KEY_TAKEN, code="already_exists")
    agent = Agent(
        id=new_id("agt_"),
        workspace_id=workspace_id,
        key=key,
        name=optional_text(request.name) or key,
        description=optional_text(request.description),
        prompt_id=prompt_id,
        instructions=optional_text(request.instructions),
        model=model,
        tools=_tools(request.tools),
        executor=text(request.executor),
        created_by=uow.actor.actor_id or "system",
        created_at=uow.now,
        updated_at=uow.now,
        deleted_at=None,
    )
    try:
        rows.add(uow.db, agent)
    except IntegrityError:  # the same key committed meanwhile
        raise Conflict(KEY_TAKEN, code="already_exists") from None
    uow.audit(
        "agent.created",
        workspace_id=workspace_id,
        target_type="agent",
        target_id=agent.id,
        summary=f"{uow.actor.label} created agent {key!r}",
        metadata={
            "key": key,
            "name": agent.name,
            "model": model,
            "prompt_id": prompt_id,
            "executor": agent.executor,
        },
    )
    return agent


def update_agent(
    uow: UnitOfWork, workspace_id: str, agent_id: str, request: models.AgentUpdate
) -> Agent:
    """Change the fields sent, and nothing else."""
    agent = get_agent(uow, workspace_id, agent_id)
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    for name in ("name", "model", "executor"):
        if name in sent:
            changes[name] = text(getattr(request, name))
    for name in ("description", "instructions"):
        if name in sent:
            changes[name] = optional_text(getattr(request, name))
    if "tools" in sent:
        changes["tools"] = _tools(request.tools)
    for name, value in changes.items():
        setattr(agent, name, value)
    agent.updated_at = uow.now
    uow.audit(
        "agent.updated",
        workspace_id=workspace_id,
        target_type="agent",
        target_id=agent.id,
        summary=f"{uow.actor.label} updated agent {agent.key!r}",
        metadata={"fields": sorted(changes)},
    )
    return agent


def delete_agent(uow: UnitOfWork, workspace_id: str, agent_id: str) -> None:
    """Soft-delete: the agent answers 404 from now on and its key is free; refused while one
    of its runs is active."""
    agent = get_agent(uow, workspace_id, agent_id)
    refuse_while_active(uow, workspace_id, "agent", agent.id)
    agent.deleted_at = uow.now
    agent.updated_at = uow.now
    uow.audit(
        "agent.deleted",
        workspace_id=workspace_id,
        target_type="agent",
        target_id=agent.id,
        summary=f"{uow.actor.label} deleted agent {agent.key!r}",
        metadata={"key": agent.key},
    )


def refuse_while_active(uow: UnitOfWork, workspace_id: str, kind: str, source_id: str) -> None:
    """409 ``has_active_runs`` while a run of this agent or workflow is queued, claimed,
    running or waiting."""
    active = definition_rows.active_runs(uow.db, workspace_id, kind, source_id)
    if active:
        raise Conflict(
            f"The {kind} has {active} active run{'s' if active != 1 else ''}: cancel them or "
            "wait for them to finish before deleting it.",
            code="has_active_runs",
            extra={"active_runs": active},
        )


# ── the parts ───────────────────────────────────────────────────────────────────────────────


def _tools(tools: Any) -> list[dict[str, Any]]:
    """The tool definitions as stored, every field present (the model sees them in order)."""
    return [
        {
            "name": text(tool.name),
            "description": tool.description or "",
            "parameters": dict(tool.parameters) if tool.parameters else dict(NO_PARAMETERS),
        }
        for tool in plain(tools) or []
    ]


# ── running ─────────────────────────────────────────────────────────────────────────────────


def start_run(
    uow: UnitOfWork,
    workspace_id: str,
    agent_id: str,
    request: models.AgentRunCreate | None,
    *,
    idempotency_key: str | None,
    policy: run_queue.QueuePolicy = run_queue.DEFAULT_POLICY,
) -> run_queue.Enqueued:
    """Queue a run of the agent for its executor (or, for a repeated ``Idempotency-Key``, the
    run the first request queued). With a published prompt, the variables must be its own
    (400 ``missing_variables``, ``undeclared_variables``) before anything is queued."""
    agent = get_agent(uow, workspace_id, agent_id)
    run_input = request.input if request is not None else None
    variables = dict(plain(request.variables) or {}) if request is not None else {}
    if agent.prompt_id is not None:
        _check_variables(uow, workspace_id, agent.prompt_id, variables)
    return run_queue.enqueue(
        uow,
        run_queue.NewRun(
            workspace_id=workspace_id,
            source_type="agent",
            source_id=agent.id,
            input=run_input,
            variables=variables,
            executor=agent.executor,
            idempotency_key=idempotency_key,
            request_fingerprint=run_queue.fingerprint(
                "createAgentRun", agent.id, run_input, variables
            ),
        ),
        policy,
    )


def _check_variables(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, variables: dict[str, Any]
) -> None:
    prompt = prompt_rows.get_live(uow.db, prompt_id, workspace_id)
    if prompt is None or prompt.live_version is None:
        return  # the run fails, saying why, when it gets there
    version = prompt_rows.get_version(uow.db, prompt.id, prompt.live_version)
    if version is not None:
        prompt_templates.render(
            version.content, version.variables, variables, field="body.variables"
        )
