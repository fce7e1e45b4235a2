"""prompts: drafts, published versions, rollback and the A/B rollout of a workspace's prompts."""

from __future__ import annotations

from typing import Any

from flask import Response

from server.domain import prompts
from server.domain.prompts import version_position
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request

# A JSON ``null`` answer (``Reply`` would answer no body at all).
_JSON_NULL = b"null"


def list_prompts(req: Request) -> dict[str, Any]:
    """The workspace's prompts, filtered by ``q``, ``env``, ``category``, ``tag``,
    ``updated_since``."""
    assert req.page is not None
    query = req.query
    found, total = prompts.list_prompts(
        req.work,
        req.path["workspace_id"],
        q=query.get("q"),
        env=query.get("env"),
        category=query.get("category"),
        tag=query.get("tag"),
        updated_since=query.get("updated_since"),
        window=req.page,
    )
    return req.page.respond(found, total=total)


def create_prompt(req: Request) -> Reply:
    """A new prompt (published as version 1 with ``publish: true``)."""
    prompt = prompts.create_prompt(req.work, req.path["workspace_id"], req.body)
    return Reply(prompt, status=201, headers={"Location": f"{API_BASE}/prompts/{prompt.id}"})


def get_prompt(req: Request) -> Any:
    """The draft and where it stands."""
    return prompts.get_prompt(req.work, req.path["workspace_id"], req.path["prompt_id"])


def update_prompt(req: Request) -> Any:
    """Edit the draft."""
    return prompts.update_prompt(
        req.work, req.path["workspace_id"], req.path["prompt_id"], req.body
    )


def delete_prompt(req: Request) -> None:
    """Soft-delete the prompt."""
    prompts.delete_prompt(req.work, req.path["workspace_id"], req.path["prompt_id"])


def list_prompt_versions(req: Request) -> dict[str, Any]:
    """The published versions, newest first by default."""
    assert req.page is not None
    found, total = prompts.list_versions(
        req.work, req.path["workspace_id"], req.path["prompt_id"], window=req.page
    )
    return req.page.respond(found, key=version_position, total=total)


def get_prompt_version(req: Request) -> Any:
    """One published version."""
    return prompts.get_version(
        req.work, req.path["workspace_id"], req.path["prompt_id"], req.path["version"]
    )


def publish_prompt(req: Request) -> Reply:
    """Publish the draft as the next version."""
    version = prompts.publish(req.work, req.path["workspace_id"], req.path["prompt_id"], req.body)
    location = f"{API_BASE}/prompts/{version.prompt_id}/versions/{version.version}"
    return Reply(version, status=201, headers={"Location": location})


def rollback_prompt(req: Request) -> Any:
    """Make a version live again."""
    return prompts.rollback(req.work, req.path["workspace_id"], req.path["prompt_id"], req.body)


def get_prompt_rollout(req: Request) -> Any:
    """The rollout, or JSON ``null``."""
    rollout = prompts.get_rollout(req.work, req.path["workspace_id"], req.path["prompt_id"])
    if rollout is None:
        return Response(_JSON_NULL, status=200, mimetype="application/json")
    return rollout


def set_prompt_rollout(req: Request) -> Any:
    """Replace the rollout."""
    return prompts.set_rollout(req.work, req.path["workspace_id"], req.path["prompt_id"], req.body)


def delete_prompt_rollout(req: Request) -> None:
    """Remove the rollout."""
    prompts.delete_rollout(req.work, req.path["workspace_id"], req.path["prompt_id"])
