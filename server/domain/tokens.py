"""Personal access tokens: a user's bearer credentials, living 1 day to 1 year, shown once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from generated import models
from server.domain.errors import Invalid, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import as_datetime, optional_text, text, unique
from server.storage import tokens as rows
from server.storage.models import PersonalAccessToken

MIN_LIFETIME = timedelta(days=1)
# Clients compute "now + 1 day" before the request travels; accept that much clock skew.
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token and its secret, which is not stored anywhere and is shown only now."""

    token: PersonalAccessToken
    secret: str


def _one_year_after(stamp: datetime) -> datetime:
    try:
        return stamp.replace(year=stamp.year + 1)
    except ValueError:  # 29 February
        return stamp.replace(year=stamp.year + 1, day=28)


def list_tokens(
    uow: UnitOfWork, user_id: str, *, status: str | None, window: Window
) -> tuple[Sequence[PersonalAccessToken], int | None]:
    """The user's tokens (active and revoked) in ``window``, and their count if asked."""
    status = optional_text(status)
    found = rows.list_pats(
        uow.db,
        user_id,
        status=status,
        after=window.after,
        order=window.direction,
        limit=window.limit,
    )
    total = rows.count_pats(uow.db, user_id, status=status) if window.include_total else None
    return found, total


def issue_token(
    uow: UnitOfWork, user_id: str, request: models.TokenCreate, *, secret: str | None = None
) -> IssuedToken:
    """Issue a token of ``user_id`` expiring between 1 day and 1 year from now; its secret is
    fresh unless the operator chose it (``secret``, the bootstrap token)."""
    expires_at = as_datetime(request.expires_at, "body.expires_at")
    earliest = uow.now + MIN_LIFETIME - CLOCK_SKEW
    latest = _one_year_after(uow.now) + CLOCK_SKEW
    if not earliest <= expires_at <= latest:
        raise Invalid(
            "expires_at must lie between 1 day and 1 year from now.",
            errors=[("body.expires_at", "must be between 1 day and 1 year from now")],
        )
    token, secret = rows.create_pat(
        uow.db,
        user_id=user_id,
        name=text(request.name),
        scopes=unique(request.scopes),
        expires_at=expires_at,
        now=uow.now,
        secret=secret,
    )
    uow.audit(
        "pat.created",
        target_type="pat",
        target_id=token.id,
        summary=f"{uow.actor.label} created personal access token {token.name!r}",
        metadata={"name": token.name, "scopes": token.scopes, "expires_at": token.expires_at},
    )
    return IssuedToken(token, secret)


def rename_token(
    uow: UnitOfWork, user_id: str, token_id: str, request: models.TokenUpdate
) -> PersonalAccessToken:
    """Rename an active token of ``user_id``; a revoked, unknown or foreign one is not found."""
    token = rows.get_pat(uow.db, user_id, token_id)
    if token is None or token.status != "active":
        raise NotFound("Token not found.")
    name = optional_text(request.name)
    if name is not None and name != token.name:
        old = token.name
        rows.update_pat(uow.db, token, name=name)
        uow.audit(
            "pat.updated",
            target_type="pat",
            target_id=token.id,
            summary=(f"{uow.actor.label} renamed personal access token {old!r} to {token.name!r}"),
            metadata={"name": {"from": old, "to": token.name}},
        )
    return token


def revoke_token(uow: UnitOfWork, user_id: str, token_id: str) -> PersonalAccessToken:
    """Revoke an active token of ``user_id``; a second revoke is not found."""
    token = rows.revoke_pat(uow.db, user_id, token_id, now=uow.now)
    if token is None:
        raise NotFound("Token not found.")
    uow.audit(
        "pat.revoked",
        target_type="pat",
        target_id=token.id,
        summary=f"{uow.actor.label} revoked personal access token {token.name!r}",
        metadata={"name": token.name},
    )
    return token


__all__ = ["IssuedToken", "issue_token", "list_tokens", "rename_token", "revoke_token"]
