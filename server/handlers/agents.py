"""agents: a workspace's agents, and running them."""

from __future__ import annotations

from typing import Any

from server.domain import agents, run_queue
from server.handlers._common import API_BASE
from server.handlers._run_replies import run_reply
from server.runtime.context import AfterCommit, Reply, Request


def list_agents(req: Request) -> dict[str, Any]:
    """The workspace's agents, filtered by ``q``."""
    assert req.page is not None
    found, total = agents.list_agents(
        req.work, req.path["workspace_id"], q=req.query.get("q"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_agent(req: Request) -> Reply:
    """A new agent."""
    agent = agents.create_agent(req.work, req.path["workspace_id"], req.body)
    return Reply(agent, status=201, headers={"Location": f"{API_BASE}/agents/{agent.id}"})


def get_agent(req: Request) -> Any:
    """One agent."""
    return agents.get_agent(req.work, req.path["workspace_id"], req.path["agent_id"])


def update_agent(req: Request) -> Any:
    """Change an agent."""
    return agents.update_agent(req.work, req.path["workspace_id"], req.path["agent_id"], req.body)


def delete_agent(req: Request) -> None:
    """Soft-delete an agent."""
    agents.delete_agent(req.work, req.path["workspace_id"], req.path["agent_id"])


def create_agent_run(req: Request) -> Reply | AfterCommit:
    """Queue a run of the agent (and, with ``wait=true``, wait for it to end)."""
    enqueued = agents.start_run(
        req.work,
        req.path["workspace_id"],
        req.path["agent_id"],
        req.body,
        idempotency_key=req.headers.get("Idempotency-Key"),
        policy=run_queue.policy_of(req.state.config),
    )
    return run_reply(req, enqueued.run)
