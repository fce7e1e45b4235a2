"""The SDK fetch: the published content an application should use, by key.

The workspace is the credential's: an API key's own, or for a user (a session, a personal
access token) the one they name, where they must be a member (any role). Only published
content is served: the live version, a version asked for, or a rollout's variant for the
client (``server.domain.rollout``); a prompt never published is 404 ``not_published``.

The answer carries a fingerprint of exactly what is served (version, variant, text …), so a
client's copy can be revalidated cheaply (the HTTP layer makes it the ``ETag``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson

from server.domain import rollout
from server.domain.actors import Principal
from server.domain.errors import Invalid, NotFound
from server.domain.unit import UnitOfWork
from server.domain.workspaces import SETTINGS_DEFAULTS
from server.storage import prompts as prompt_rows
from server.storage import workspaces as workspace_rows

WORKSPACE_HEADER = "X-Workspace-Id"


@dataclass(frozen=True, slots=True)
class Served:
    """What the fetch answers (``SdkPrompt``) and its fingerprint."""

    key: str
    env: str
    version: int
    label: str | None
    variant: str | None
    model: str | None
    content: str
    variables: list[str]
    fingerprint: str = field(default="", compare=False)


def fetch(
    uow: UnitOfWork,
    key: str,
    *,
    caller: Principal,
    named_workspace: str | None,
    env: str | None,
    version: int | None,
    client_id: str | None,
) -> Served:
    """The published content of ``key`` in the caller's workspace (see the module docstring).

    One query finds the prompt and its live version (the hot path: a fetch without a rollout);
    a second reads another version when one is asked for or a rollout picks it.
    """
    workspace_id = _workspace(uow, caller, named_workspace)
    candidates = prompt_rows.sdk_candidates(uow.db, workspace_id, key, env)
    if env is None and candidates:
        stored = candidates[0].workspace_settings or {}
        env = str(stored.get("default_env") or SETTINGS_DEFAULTS["default_env"])
    prompt = next((c for c in candidates if c.env == env), None)
    if prompt is None:
        where = f"the environment {env!r}" if env else "the workspace's default environment"
        raise NotFound(f"No prompt {key!r} in {where}.")
    if prompt.live_version is None:
        raise NotFound(f"The prompt {key!r} has never been published.", code="not_published")
    if version is not None:
        choice = rollout.Choice(version, None)
    else:
        choice = rollout.choose(
            prompt.rollout, prompt.live_version, prompt_id=prompt.prompt_id, client_id=client_id
        )
    served = (
        prompt.live
        if prompt.live is not None and choice.version == prompt.live_version
        else prompt_rows.served_version(uow.db, prompt.prompt_id, choice.version)
    )
    if served is None:
        raise NotFound(f"Version {choice.version} of the prompt {key!r} not found.")
    shown = (
        prompt.key,
        prompt.env,
        served.version,
        served.label,
        choice.variant,
        served.model,
        served.content,
        list(served.variables),
    )
    return Served(*shown, fingerprint=hashlib.sha256(orjson.dumps(shown)).hexdigest()[:32])


def _workspace(uow: UnitOfWork, caller: Principal, named: str | None) -> str:
    """The workspace the caller fetches from; 404 when it is not theirs to see."""
    if caller.kind == "api_key":
        if caller.workspace_id is None or (named is not None and named != caller.workspace_id):
            raise NotFound("Workspace not found.")
        return caller.workspace_id
    if named is None:
        raise Invalid(
            f"Name the workspace to fetch from in the {WORKSPACE_HEADER} header.",
            code="workspace_required",  # as the AI gateway answers a token without one
            errors=[(f"header.{WORKSPACE_HEADER}", "is required with a user's credential")],
        )
    if (
        caller.user_id is None
        or workspace_rows.get_member_role(uow.db, named, caller.user_id) is None
    ):
        raise NotFound("Workspace not found.")
    return named
