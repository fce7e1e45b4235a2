"""runs: read, list, cancel, answer and retry runs; their trace and statistics."""

from __future__ import annotations

from typing import Any

from server.domain import run_queue, runs
from server.domain.values import optional_datetime
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request


def list_runs(req: Request) -> dict[str, Any]:
    """The workspace's runs, filtered."""
    assert req.page is not None
    query = req.query
    found, total = runs.list_runs(
        req.work,
        req.path["workspace_id"],
        runs.RunQuery(
            status=query.get("status"),
            source_type=query.get("source_type"),
            source_id=query.get("source_id"),
            worker_id=query.get("worker_id"),
            created_from=optional_datetime(query.get("from"), "query.from"),
            created_to=optional_datetime(query.get("to"), "query.to"),
        ),
        window=req.page,
    )
    return req.page.respond(found, total=total)


def get_run_stats(req: Request) -> runs.RunStats:
    """Counts, outcomes, usage and durations of the workspace's recent runs."""
    query = req.query
    return runs.run_stats(
        req.work,
        req.path["workspace_id"],
        created_from=optional_datetime(query.get("from"), "query.from"),
        created_to=optional_datetime(query.get("to"), "query.to"),
        group_by=query.get("group_by", "status"),
    )


def get_run(req: Request) -> Any:
    """One run."""
    return runs.get_run(req.work, req.path["workspace_id"], req.path["run_id"])


def cancel_run(req: Request) -> Any:
    """Cancel a run, or ask its executor to stop it."""
    return runs.cancel_run(req.work, req.path["workspace_id"], req.path["run_id"])


def submit_run_input(req: Request) -> Any:
    """Resume a waiting run with the caller's answer."""
    return runs.submit_input(req.work, req.path["workspace_id"], req.path["run_id"], req.body.input)


def retry_run(req: Request) -> Reply:
    """Queue a new run like an ended one."""
    enqueued = runs.retry_run(
        req.work,
        req.path["workspace_id"],
        req.path["run_id"],
        idempotency_key=req.headers.get("Idempotency-Key"),
        policy=run_queue.policy_of(req.state.config),
    )
    run = enqueued.run
    return Reply(
        run,
        status=run.created_status or 202,
        headers={"Location": f"{API_BASE}/runs/{run.id}"},
    )


def get_run_steps(req: Request) -> runs.Trace:
    """The run's trace as a tree."""
    return runs.run_trace(req.work, req.path["workspace_id"], req.path["run_id"])
