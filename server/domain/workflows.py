"""Workflows: typed steps, numbered versions, soft delete.

The rules:

* ``key`` is unique among a workspace's workflows that are not deleted (409
  ``already_exists``); deleting is soft, frees the key, and is refused while a run of the
  workflow is active (409 ``has_active_runs``);
* steps are checked when saved (400): keys unique (``duplicate_step_key``), each step with
  the fields its type reads and no other (``validation_failed``), expressions that parse and
  look back only (``invalid_expression``), templates that parse and use only the variables
  their input gives (``template_error``, ``undeclared_variables``), and prompts and agents
  of the workspace (404 otherwise);
* steps that differ from the current ones make version N+1, numbered under the workflow row's
  lock (``{workflow_id, version}`` is unique as well); equal steps make none.

Every change is audited (``workflow.*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain import expressions, prompt_templates, run_queue
from server.domain.agents import refuse_while_active
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, plain, text
from server.security import new_id
from server.storage import definitions as definition_rows
from server.storage import prompts as prompt_rows
from server.storage import rows
from server.storage.definition_models import Agent, Workflow, WorkflowVersion

KEY_TAKEN = "The workspace already has a workflow with this key."

# The fields each step type reads besides key, name, type and input; the first group lists
# the fields it needs (``render`` needs one of its two).
STEP_FIELDS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "render": (("template", "prompt_id"), ()),
    "model": (("model", "prompt"), ("system", "max_tokens")),
    "transform": ((), ()),
    "approval": ((), ("message",)),
    "agent": (("agent_id",), ("variables",)),
}
COMMON_FIELDS = ("key", "name", "type", "input")
# The fields whose strings may hold expressions.
EXPRESSION_FIELDS = ("input", "variables", "prompt", "system", "message")


# ── reading ─────────────────────────────────────────────────────────────────────────────────


def list_workflows(
    uow: UnitOfWork, workspace_id: str, *, q: str | None, window: Window
) -> tuple[Sequence[Workflow], int | None]:
    """The workspace's workflows whose key or name contains ``q``, in ``window``, and their
    count if asked."""
    found = definition_rows.list_definitions(
        uow.db,
        Workflow,
        workspace_id,
        q=q,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    if not window.include_total:
        return found, None
    return found, definition_rows.count_definitions(uow.db, Workflow, workspace_id, q=q)


def get_workflow(uow: UnitOfWork, workspace_id: str, workflow_id: str) -> Workflow:
    """The workspace's workflow (not deleted), or 404."""
    workflow = definition_rows.get_live(uow.db, Workflow, workflow_id, workspace_id)
    if workflow is None:
        raise NotFound("Workflow not found.")
    return workflow


def list_versions(
    uow: UnitOfWork, workspace_id: str, workflow_id: str, *, window: Window
) -> tuple[Sequence[WorkflowVersion], int | None]:
    """The workflow's versions in ``window`` (by number), and their count if asked."""
    workflow = get_workflow(uow, workspace_id, workflow_id)
    after = int(window.after[1]) if window.after is not None else None
    found = definition_rows.list_versions(
        uow.db, workflow.id, after=after, order=window.direction, limit=window.limit
    )
    if not window.include_total:
        return found, None
    return found, definition_rows.count_versions(uow.db, workflow.id)


def version_position(version: WorkflowVersion) -> tuple[datetime, str]:
    """Where a list of versions continues after ``version`` (a cursor's position)."""
    return version.created_at, str(version.version)


def get_version(uow: UnitOfWork, workflow_id: str, number: int) -> WorkflowVersion:
    """One version of a workflow, deleted or not (a run goes on with the version it
    recorded); 404 when there is none."""
    found = definition_rows.get_version(uow.db, workflow_id, number)
    if found is None:
        raise NotFound(f"Version {number} of this workflow not found.")
    return found


# ── writing ─────────────────────────────────────────────────────────────────────────────────


def create_workflow(uow: UnitOfWork, workspace_id: str, request: models.WorkflowCreate) -> Workflow:
    """A new workflow whose steps are version 1."""
    key = text(request.key)
    steps = checked_steps(uow, workspace_id, request.steps)
    if definition_rows.find_live(uow.db, Workflow, workspace_id, key) is not None:
        raise Conflict(KEY_TAKEN, code="already_exists")
    workflow = Workflow(
        id=new_id("wfl_"),
        workspace_id=workspace_id,
        key=key,
        name=optional_text(request.name) or key,
        description=optional_text(request.description),
        executor=text(request.executor),
        version=1,
        steps=steps,
        created_by=uow.actor.actor_id or "system",
        created_at=uow.now,
        updated_at=uow.now,
        deleted_at=None,
    )
    try:
        rows.add(uow.db, workflow)
    except IntegrityError:  # the same key committed meanwhile
        raise Conflict(KEY_TAKEN, code="already_exists") from None
    _add_version(uow, workflow)
    uow.audit(
        "workflow.created",
        workspace_id=workspace_id,
        target_type="workflow",
        target_id=workflow.id,
        summary=f"{uow.actor.label} created workflow {key!r} with {len(steps)} steps",
        metadata={
            "key": key,
            "name": workflow.name,
            "executor": workflow.executor,
            "version": 1,
            "steps": [step["key"] for step in steps],
        },
    )
    return workflow


def update_workflow(
    uow: UnitOfWork, workspace_id: str, workflow_id: str, request: models.WorkflowUpdate
) -> Workflow:
    """Change the fields sent; steps that differ from the current ones make a new version."""
    workflow = definition_rows.lock(uow.db, get_workflow(uow, workspace_id, workflow_id))
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in sent:
        changes["name"] = text(request.name)
    if "description" in sent:
        changes["description"] = optional_text(request.description)
    if "executor" in sent:
        changes["executor"] = text(request.executor)
    new_version = False
    if "steps" in sent:
        steps = checked_steps(uow, workspace_id, request.steps)
        if steps != workflow.steps:
            changes["steps"] = steps
            new_version = True
    for name, value in changes.items():
        setattr(workflow, name, value)
    if new_version:
        workflow.version += 1
        _add_version(uow, workflow)
    workflow.updated_at = uow.now
    uow.audit(
        "workflow.updated",
        workspace_id=workspace_id,
        target_type="workflow",
        target_id=workflow.id,
        summary=(
            f"{uow.actor.label} updated workflow {workflow.key!r}"
            + (f" (version {workflow.version})" if new_version else "")
        ),
        metadata={
            "fields": sorted(changes),
            "version": workflow.version,
            "new_version": new_version,
        },
    )
    return workflow


def delete_workflow(uow: UnitOfWork, workspace_id: str, workflow_id: str) -> None:
    """Soft-delete: the workflow answers 404 from now on and its key is free; refused while
    one of its runs is active."""
    workflow = get_workflow(uow, workspace_id, workflow_id)
    refuse_while_active(uow, workspace_id, "workflow", workflow.id)
    workflow.deleted_at = uow.now
    workflow.updated_at = uow.now
    uow.audit(
        "workflow.deleted",
        workspace_id=workspace_id,
        target_type="workflow",
        target_id=workflow.id,
        summary=f"{uow.actor.label} deleted workflow {workflow.key!r}",
        metadata={"key": workflow.key, "version": workflow.version},
    )


# ── checking steps ──────────────────────────────────────────────────────────────────────────


def checked_steps(uow: UnitOfWork, workspace_id: str, steps: Any) -> list[dict[str, Any]]:
    """The steps as stored (the fields sent, ``name`` defaulting to the key), or 400 for the
    first kind of problem found (field errors name every instance of it)."""
    stored = [_stored(step) for step in plain(steps)]
    _check_keys(stored)
    _check_fields(stored)
    _check_expressions(stored)
    _check_templates(stored)
    _check_references(uow, workspace_id, stored)
    return stored


def _stored(step: models.WorkflowStep) -> dict[str, Any]:
    fields: dict[str, Any] = step.model_dump(mode="json", exclude_unset=True)
    fields["name"] = fields.get("name") or fields["key"]
    return fields


def _where(index: int, field: str | None = None) -> str:
    return f"body.steps[{index}]" + (f".{field}" if field else "")


def _check_keys(steps: list[dict[str, Any]]) -> None:
    first: dict[str, int] = {}
    errors = []
    for index, step in enumerate(steps):
        key = step["key"]
        if key in first:
            errors.append((_where(index, "key"), f"repeats the key of steps[{first[key]}]"))
        first.setdefault(key, index)
    if errors:
        raise Invalid(
            "Step keys must be unique within a workflow.",
            code="duplicate_step_key",
            errors=errors,
        )


def _check_fields(steps: list[dict[str, Any]]) -> None:
    errors = []
    for index, step in enumerate(steps):
        kind = step["type"]
        needed, optional = STEP_FIELDS[kind]
        for field in step:
            if field not in COMMON_FIELDS and field not in needed + optional:
                errors.append((_where(index, field), f"is not read by a {kind} step"))
        if kind == "render":
            given = [f for f in needed if f in step]
            if len(given) != 1:
                errors.append(
                    (_where(index), "a render step takes a template or a prompt_id (one of them)")
                )
            if "input" in step and not isinstance(step["input"], dict):
                errors.append((_where(index, "input"), "a render step's input is an object"))
        else:
            errors.extend(
                (_where(index, f), f"is required for a {kind} step")
                for f in needed
                if f not in step
            )
    if errors:
        raise Invalid(f"A step has fields its type does not take: {errors[0][1]}.", errors=errors)


def _check_expressions(steps: list[dict[str, Any]]) -> None:
    errors: list[tuple[str, str]] = []
    earlier: list[str] = []
    for index, step in enumerate(steps):
        for field in EXPRESSION_FIELDS:
            if field in step:
                errors += expressions.check(
                    step[field], _where(index, field), earlier_steps=earlier
                )
        earlier.append(step["key"])
    if errors:
        field, message = errors[0]
        raise Invalid(
            f"An expression in {field} is not valid: {message}.",
            code="invalid_expression",
            errors=errors,
        )


def _check_templates(steps: list[dict[str, Any]]) -> None:
    for index, step in enumerate(steps):
        if step["type"] != "render" or "template" not in step:
            continue
        variables = list(step.get("input") or {})
        reserved = prompt_templates.reserved_variables(variables)
        bad = [name for name in variables if not name.isidentifier() or name.startswith("_")]
        if reserved or bad:
            raise Invalid(
                "A render step's input names the template's variables: letters, digits and "
                "'_', not starting with '_', and none of the template language's words.",
                errors=[
                    (_where(index, f"input.{name}"), "cannot be a template variable")
                    for name in [*reserved, *bad]
                ],
            )
        prompt_templates.check(step["template"], variables, field=_where(index, "template"))


def _check_references(uow: UnitOfWork, workspace_id: str, steps: list[dict[str, Any]]) -> None:
    for index, step in enumerate(steps):
        prompt_id = step.get("prompt_id")
        if prompt_id is not None and prompt_rows.get_live(uow.db, prompt_id, workspace_id) is None:
            raise NotFound(
                "Prompt not found.",
                errors=[(_where(index, "prompt_id"), f"{prompt_id} is not a prompt here")],
            )
        agent_id = step.get("agent_id")
        if (
            agent_id is not None
            and definition_rows.get_live(uow.db, Agent, agent_id, workspace_id) is None
        ):
            raise NotFound(
                "Agent not found.",
                errors=[(_where(index, "agent_id"), f"{agent_id} is not an agent here")],
            )


def _add_version(uow: UnitOfWork, workflow: Workflow) -> WorkflowVersion:
    """Snapshot ``workflow``'s steps as its current version number (its row locked, or new)."""
    version = WorkflowVersion(
        id=new_id("wfv_"),
        workflow_id=workflow.id,
        version=workflow.version,
        steps=workflow.steps,
        created_by=uow.actor.actor_id or "system",
        created_at=uow.now,
    )
    try:
        rows.add(uow.db, version)
    except IntegrityError:  # a number taken meanwhile: only if a writer skipped the row lock
        raise Conflict(
            "Another change of this workflow took the same version number; try again.",
            code="conflict",
        ) from None
    return version


# ── running ─────────────────────────────────────────────────────────────────────────────────


def start_run(
    uow: UnitOfWork,
    workspace_id: str,
    workflow_id: str,
    request: models.WorkflowRunCreate | None,
    *,
    idempotency_key: str | None,
    policy: run_queue.QueuePolicy = run_queue.DEFAULT_POLICY,
) -> run_queue.Enqueued:
    """Queue a run of the workflow's current version for its executor (or, for a repeated
    ``Idempotency-Key``, the run the first request queued)."""
    workflow = get_workflow(uow, workspace_id, workflow_id)
    run_input = request.input if request is not None else None
    variables = dict(plain(request.variables) or {}) if request is not None else {}
    return run_queue.enqueue(
        uow,
        run_queue.NewRun(
            workspace_id=workspace_id,
            source_type="workflow",
            source_id=workflow.id,
            input=run_input,
            variables=variables,
            executor=workflow.executor,
            workflow_version=workflow.version,
            idempotency_key=idempotency_key,
            request_fingerprint=run_queue.fingerprint(
                "createWorkflowRun", workflow.id, run_input, variables
            ),
        ),
        policy,
    )
