"""The answer of a run-creating request: 202 with the queued run, or, with ``wait=true``, the
run once it has ended (201, with its trace), waited for after the request's transaction."""

from __future__ import annotations

from typing import Any

from server.domain import run_waiting
from server.handlers._common import API_BASE
from server.runtime.context import AfterCommit, Reply, Request
from server.runtime.present import Overlay


def run_reply(req: Request, run: Any) -> Reply | AfterCommit:
    """202 with ``run``; with ``wait=true``, what ``run_waiting.await_run`` finds."""
    headers = {"Location": f"{API_BASE}/runs/{run.id}"}
    if not req.query.get("wait"):
        return Reply(run, status=202, headers=headers)
    sessions = req.state.database.read_sessionmaker
    timeout = req.state.config.run_wait_s
    workspace_id, run_id = run.workspace_id, run.id

    def waited() -> Reply:
        found = run_waiting.await_run(sessions, workspace_id, run_id, timeout=timeout)
        if found.trace is None:
            return Reply(found.run, status=202, headers=headers)
        return Reply(Overlay(found.run, steps=found.trace.steps), status=201, headers=headers)

    return AfterCommit(waited)
