"""Prompts: a draft per ``{key, env}``, immutable numbered versions, rollback and a rollout.

The rules:

* ``{key, env}`` is unique among a workspace's prompts that are not deleted (409
  ``already_exists``); deleting is soft, and frees the key and env;
* the draft is ``content, model, category, tags, variables`` (the name is the prompt's, not
  versioned); ``draft_changed`` says whether it differs from the live version and is true while
  nothing is published; the template must parse and use only the declared variables;
* ``publish`` snapshots the draft as version N+1 and makes it live (409 ``no_changes`` when
  ``draft_changed`` is false); the number comes from the prompt row, read under the row's lock,
  and ``{prompt_id, version}`` is unique, so concurrent publishes never share a number;
* ``rollback`` makes a version live again and copies it into the draft (404 for an unknown
  version); a rollout names two existing versions (400 ``unknown_version``).

Every change is audited (``prompt.*``) and published on the event bus (``prompt.*``,
``rollout.*``: ``{prompt_id, key, env, version}``) once it commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain import events, prompt_templates
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork, rfc3339
from server.domain.values import optional_datetime, optional_text, plain, text, unique
from server.domain.workspaces import settings_of
from server.security import new_id
from server.storage import prompts as prompt_rows
from server.storage import rows
from server.storage import workspaces as workspace_rows
from server.storage.prompt_models import Prompt, PromptVersion

KEY_TAKEN = "The workspace already has a prompt with this key in this environment."
# The draft: what a version snapshots and ``draft_changed`` compares.
DRAFT_FIELDS = ("content", "model", "category", "tags", "variables")


# ── reading ─────────────────────────────────────────────────────────────────────────────────


def list_prompts(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    q: str | None,
    env: str | None,
    category: str | None,
    tag: str | None,
    updated_since: Any,
    window: Window,
) -> tuple[Sequence[Prompt], int | None]:
    """The workspace's prompts matching the filters in ``window``, and their count if asked
    (``updated_since``: an RFC 3339 string or a datetime)."""
    filters: dict[str, Any] = {
        "q": q,
        "env": env,
        "category": category,
        "tag": tag,
        "updated_since": optional_datetime(updated_since, "query.updated_since"),
    }
    found = prompt_rows.list_prompts(
        uow.db,
        workspace_id,
        after=window.after,
        order=window.direction,
        limit=window.limit,
        **filters,
    )
    if not window.include_total:
        return found, None
    return found, prompt_rows.count_prompts(uow.db, workspace_id, **filters)


def get_prompt(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> Prompt:
    """The workspace's prompt (not deleted), or 404."""
    prompt = prompt_rows.get_live(uow.db, prompt_id, workspace_id)
    if prompt is None:
        raise NotFound("Prompt not found.")
    return prompt


def list_versions(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, *, window: Window
) -> tuple[Sequence[PromptVersion], int | None]:
    """The prompt's versions in ``window`` (by number), and their count if asked."""
    prompt = get_prompt(uow, workspace_id, prompt_id)
    after = int(window.after[1]) if window.after is not None else None
    found = prompt_rows.list_versions(
        uow.db, prompt.id, after=after, order=window.direction, limit=window.limit
    )
    if not window.include_total:
        return found, None
    return found, prompt_rows.count_versions(uow.db, prompt.id)


def version_position(version: PromptVersion) -> tuple[datetime, str]:
    """Where a list of versions continues after ``version`` (a cursor's position)."""
    return version.created_at, str(version.version)


def get_version(uow: UnitOfWork, workspace_id: str, prompt_id: str, number: int) -> PromptVersion:
    """One published version of the prompt, or 404."""
    prompt = get_prompt(uow, workspace_id, prompt_id)
    found = prompt_rows.get_version(uow.db, prompt.id, number)
    if found is None:
        raise NotFound(f"Version {number} of this prompt not found.")
    return found


def get_rollout(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> dict[str, Any] | None:
    """The prompt's rollout, or None when it has none."""
    return get_prompt(uow, workspace_id, prompt_id).rollout


# ── writing ─────────────────────────────────────────────────────────────────────────────────


def create_prompt(uow: UnitOfWork, workspace_id: str, request: models.PromptCreate) -> Prompt:
    """A new prompt in ``env`` (default: the workspace's), published as version 1 if asked."""
    key = text(request.key)
    env = optional_text(request.env) or _default_env(uow, workspace_id)
    variables = unique(plain(request.variables))
    _check_draft(text(request.content), variables, "body")
    if prompt_rows.find_live(uow.db, workspace_id, key, env) is not None:
        raise Conflict(KEY_TAKEN, code="already_exists")
    prompt = Prompt(
        id=new_id("prm_"),
        workspace_id=workspace_id,
        key=key,
        env=env,
        name=optional_text(request.name) or key,
        content=text(request.content),
        model=optional_text(request.model),
        category=optional_text(request.category),
        tags=unique(plain(request.tags)),
        variables=variables,
        live_version=None,
        latest_version=0,
        draft_changed=True,
        rollout=None,
        created_by=uow.actor.actor_id or "system",
        created_at=uow.now,
        updated_at=uow.now,
        deleted_at=None,
    )
    try:
        rows.add(uow.db, prompt)
    except IntegrityError:  # the same key and env committed meanwhile
        raise Conflict(KEY_TAKEN, code="already_exists") from None
    uow.audit(
        "prompt.created",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=f"{uow.actor.label} created prompt {key!r} ({env})",
        metadata={"key": key, "env": env, "name": prompt.name},
    )
    _announce(uow, "prompt.created", prompt)
    if request.publish:
        _publish(uow, prompt, label=None, note=None)
    return prompt


def update_prompt(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, request: models.PromptUpdate
) -> Prompt:
    """Change the draft (and the name); fields not sent stay as they are."""
    prompt = _locked(uow, workspace_id, prompt_id)
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    if "name" in sent:
        changes["name"] = text(request.name)
    if "content" in sent:
        changes["content"] = text(request.content)
    for name in ("model", "category"):
        if name in sent:
            changes[name] = optional_text(getattr(request, name))
    for name in ("tags", "variables"):
        if name in sent:
            changes[name] = unique(plain(getattr(request, name)))
    _check_draft(
        changes.get("content", prompt.content), changes.get("variables", prompt.variables), "body"
    )
    for name, value in changes.items():
        setattr(prompt, name, value)
    prompt.draft_changed = _differs_from_live(uow, prompt)
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.updated",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=f"{uow.actor.label} edited the draft of prompt {prompt.key!r} ({prompt.env})",
        metadata={"fields": sorted(changes), "draft_changed": prompt.draft_changed},
    )
    _announce(uow, "prompt.updated", prompt)
    return prompt


def delete_prompt(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> None:
    """Soft-delete: the prompt answers 404 from now on, and its key and env are free."""
    prompt = _locked(uow, workspace_id, prompt_id)
    prompt.deleted_at = uow.now
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.deleted",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=f"{uow.actor.label} deleted prompt {prompt.key!r} ({prompt.env})",
        metadata={"key": prompt.key, "env": prompt.env, "live_version": prompt.live_version},
    )
    _announce(uow, "prompt.deleted", prompt)


def publish(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, request: models.PromptPublish | None
) -> PromptVersion:
    """Snapshot the draft as the next version and make it live; 409 ``no_changes`` when the
    draft is the live version."""
    prompt = _locked(uow, workspace_id, prompt_id)
    if not prompt.draft_changed:
        raise Conflict(
            "The draft equals the live version: edit it before publishing.", code="no_changes"
        )
    return _publish(
        uow,
        prompt,
        label=optional_text(request.label) if request is not None else None,
        note=optional_text(request.note) if request is not None else None,
    )


def rollback(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, request: models.PromptRollback
) -> Prompt:
    """Make ``version`` live again and copy it into the draft; 404 for an unknown version."""
    prompt = _locked(uow, workspace_id, prompt_id)
    number = int(plain(request.version))
    target = prompt_rows.get_version(uow.db, prompt.id, number)
    if target is None:
        raise NotFound(f"Version {number} of this prompt not found.")
    previous = prompt.live_version
    for name in DRAFT_FIELDS:
        setattr(prompt, name, getattr(target, name))
    prompt.live_version = number
    prompt.draft_changed = False
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.rolled_back",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=(
            f"{uow.actor.label} rolled prompt {prompt.key!r} ({prompt.env}) back to "
            f"version {number}"
        ),
        metadata={"from": previous, "to": number},
    )
    _announce(uow, "prompt.rolled_back", prompt)
    return prompt


def set_rollout(
    uow: UnitOfWork, workspace_id: str, prompt_id: str, request: models.PromptRolloutSet
) -> dict[str, Any]:
    """Replace the rollout; both variants must be published versions (400 ``unknown_version``)."""
    prompt = _locked(uow, workspace_id, prompt_id)
    variants = {
        "variant_a": int(plain(request.variant_a)),
        "variant_b": int(plain(request.variant_b)),
    }
    unknown = [
        (f"body.{name}", f"version {number} does not exist")
        for name, number in variants.items()
        if prompt_rows.get_version(uow.db, prompt.id, number) is None
    ]
    if unknown:
        raise Invalid(
            "A rollout can only name published versions of the prompt.",
            code="unknown_version",
            errors=unknown,
        )
    rollout: dict[str, Any] = {
        "enabled": bool(request.enabled),
        **variants,
        "weight_a": int(request.weight_a),
        "sticky": bool(request.sticky),
        "updated_at": rfc3339(uow.now),
    }
    prompt.rollout = rollout
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.rollout.updated",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=(
            f"{uow.actor.label} set the rollout of prompt {prompt.key!r} ({prompt.env}): "
            f"{rollout['weight_a']}% version {variants['variant_a']}, the rest version "
            f"{variants['variant_b']}{'' if rollout['enabled'] else ' (disabled)'}"
        ),
        metadata={k: v for k, v in rollout.items() if k != "updated_at"},
    )
    _announce(uow, "rollout.updated", prompt, rollout=rollout)
    return rollout


def delete_rollout(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> None:
    """Remove the rollout (the live version is served again); 404 when there is none."""
    prompt = _locked(uow, workspace_id, prompt_id)
    if prompt.rollout is None:
        raise NotFound("The prompt has no rollout.")
    previous = prompt.rollout
    prompt.rollout = None
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.rollout.deleted",
        workspace_id=workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=f"{uow.actor.label} ended the rollout of prompt {prompt.key!r} ({prompt.env})",
        metadata={k: v for k, v in previous.items() if k != "updated_at"},
    )
    _announce(uow, "rollout.deleted", prompt)


# ── the parts ───────────────────────────────────────────────────────────────────────────────


def _locked(uow: UnitOfWork, workspace_id: str, prompt_id: str) -> Prompt:
    """The prompt, its row locked for the rest of the transaction (404 if missing)."""
    return prompt_rows.lock_prompt(uow.db, get_prompt(uow, workspace_id, prompt_id))


def _publish(
    uow: UnitOfWork, prompt: Prompt, *, label: str | None, note: str | None
) -> PromptVersion:
    """Snapshot ``prompt``'s draft (its row locked, or new in this transaction) as N+1."""
    number = prompt.latest_version + 1
    version = PromptVersion(
        id=new_id("pvr_"),
        prompt_id=prompt.id,
        version=number,
        label=label,
        note=note,
        **{name: getattr(prompt, name) for name in DRAFT_FIELDS},
        created_by=uow.actor.actor_id or "system",
        created_at=uow.now,
    )
    try:
        rows.add(uow.db, version)
    except IntegrityError:  # a number taken meanwhile: only if a writer skipped the row lock
        raise Conflict(
            "Another publish of this prompt took the same version number; try again.",
            code="conflict",
        ) from None
    prompt.latest_version = number
    prompt.live_version = number
    prompt.draft_changed = False
    prompt.updated_at = uow.now
    uow.audit(
        "prompt.published",
        workspace_id=prompt.workspace_id,
        target_type="prompt",
        target_id=prompt.id,
        summary=(
            f"{uow.actor.label} published version {number} of prompt {prompt.key!r} "
            f"({prompt.env})" + (f" as {label!r}" if label else "")
        ),
        metadata={"version": number, "label": label, "note": note},
    )
    _announce(uow, "prompt.published", prompt)
    return version


def _check_draft(content: str, variables: Sequence[str], where: str) -> None:
    reserved = prompt_templates.reserved_variables(variables)
    if reserved:
        raise Invalid(
            f"These names cannot be template variables: {', '.join(reserved)}.",
            errors=[(f"{where}.variables", f"{name!r} is a reserved word") for name in reserved],
        )
    prompt_templates.check(content, variables, field=f"{where}.content")


def _differs_from_live(uow: UnitOfWork, prompt: Prompt) -> bool:
    if prompt.live_version is None:
        return True
    live = prompt_rows.get_version(uow.db, prompt.id, prompt.live_version)
    return live is None or any(
        getattr(live, name) != getattr(prompt, name) for name in DRAFT_FIELDS
    )


def _default_env(uow: UnitOfWork, workspace_id: str) -> str:
    workspace = workspace_rows.get_workspace(uow.db, workspace_id)
    if workspace is None:
        raise NotFound("Workspace not found.")
    return str(settings_of(workspace)["default_env"])


def _announce(uow: UnitOfWork, event_type: str, prompt: Prompt, **extra: Any) -> None:
    events.publish(
        uow,
        event_type,
        prompt.workspace_id,
        {
            "prompt_id": prompt.id,
            "key": prompt.key,
            "env": prompt.env,
            "version": prompt.live_version,
            **extra,
        },
    )
