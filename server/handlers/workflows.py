"""workflows: a workspace's workflows, their versions, and running them."""

from __future__ import annotations

from typing import Any

from server.domain import run_queue, workflows
from server.domain.workflows import version_position
from server.handlers._common import API_BASE
from server.handlers._run_replies import run_reply
from server.runtime.context import AfterCommit, Reply, Request


def list_workflows(req: Request) -> dict[str, Any]:
    """The workspace's workflows, filtered by ``q``."""
    assert req.page is not None
    found, total = workflows.list_workflows(
        req.work, req.path["workspace_id"], q=req.query.get("q"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_workflow(req: Request) -> Reply:
    """A new workflow (version 1)."""
    workflow = workflows.create_workflow(req.work, req.path["workspace_id"], req.body)
    return Reply(workflow, status=201, headers={"Location": f"{API_BASE}/workflows/{workflow.id}"})


def get_workflow(req: Request) -> Any:
    """One workflow with its current steps."""
    return workflows.get_workflow(req.work, req.path["workspace_id"], req.path["workflow_id"])


def update_workflow(req: Request) -> Any:
    """Change a workflow; new steps make a new version."""
    return workflows.update_workflow(
        req.work, req.path["workspace_id"], req.path["workflow_id"], req.body
    )


def delete_workflow(req: Request) -> None:
    """Soft-delete a workflow."""
    workflows.delete_workflow(req.work, req.path["workspace_id"], req.path["workflow_id"])


def list_workflow_versions(req: Request) -> dict[str, Any]:
    """The workflow's versions, newest first by default."""
    assert req.page is not None
    found, total = workflows.list_versions(
        req.work, req.path["workspace_id"], req.path["workflow_id"], window=req.page
    )
    return req.page.respond(found, key=version_position, total=total)


def create_workflow_run(req: Request) -> Reply | AfterCommit:
    """Queue a run of the workflow's current version (and, with ``wait=true``, wait for it)."""
    enqueued = workflows.start_run(
        req.work,
        req.path["workspace_id"],
        req.path["workflow_id"],
        req.body,
        idempotency_key=req.headers.get("Idempotency-Key"),
        policy=run_queue.policy_of(req.state.config),
    )
    return run_reply(req, enqueued.run)
