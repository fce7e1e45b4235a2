"""tokens: personal access tokens, managed with the cookie session only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from server.handlers import _serialize as ser
from server.handlers._common import API_BASE, as_datetime, body_fields, now, record
from server.runtime.context import Reply, Request
from server.runtime.errors import BadRequest, FieldError, NotFound
from server.storage import repositories as repo
from server.storage.models import PersonalAccessToken

MIN_LIFETIME = timedelta(days=1)
# Clients compute "now + 1 day" before the request travels; accept that much clock skew.
_GRACE = timedelta(minutes=5)


def _one_year_after(stamp: datetime) -> datetime:
    try:
        return stamp.replace(year=stamp.year + 1)
    except ValueError:  # 29 February
        return stamp.replace(year=stamp.year + 1, day=28)


def _key(row: PersonalAccessToken) -> tuple[datetime, str]:
    return row.created_at, row.id


def list_tokens(req: Request) -> dict[str, Any]:
    """The caller's tokens, active and revoked, newest first by default."""
    page = req.page
    assert page is not None
    status = req.query.get("status")
    rows = repo.list_pats(
        req.db,
        req.user_id,
        status=str(status) if status is not None else None,
        after=page.after,
        order="asc" if page.order == "asc" else "desc",
        limit=page.limit,
    )
    total = (
        repo.count_pats(req.db, req.user_id, status=str(status) if status else None)
        if page.include_total
        else None
    )
    return page.respond(rows, ser.token, key=_key, total=total)


def create_token(req: Request) -> Reply:
    """Issue a token; its secret appears only in this response."""
    data, _ = body_fields(req)
    current = now()
    expires_at = as_datetime(data["expires_at"], "body.expires_at")
    earliest = current + MIN_LIFETIME - _GRACE
    latest = _one_year_after(current) + _GRACE
    if not earliest <= expires_at <= latest:
        raise BadRequest(
            "expires_at must lie between 1 day and 1 year from now.",
            errors=[FieldError("body.expires_at", "must be between 1 day and 1 year from now")],
        )
    scopes = [str(s) for s in data["scopes"]]
    row, secret = repo.create_pat(
        req.db,
        user_id=req.user_id,
        name=str(data["name"]),
        scopes=list(dict.fromkeys(scopes)),
        expires_at=expires_at.astimezone(UTC),
        now=current,
    )
    assert req.principal is not None
    record(
        req,
        "pat.created",
        target_type="pat",
        target_id=row.id,
        summary=f"{req.principal.label} created personal access token {row.name!r}",
        metadata={"name": row.name, "scopes": row.scopes, "expires_at": row.expires_at},
    )
    body = ser.token(row)
    body["token"] = secret
    return Reply(body, status=201, headers={"Location": f"{API_BASE}/tokens/{row.id}"})


def _active_token(req: Request) -> PersonalAccessToken:
    row = repo.get_pat(req.db, req.user_id, str(req.path["token_id"]))
    if row is None or row.status != "active":
        raise NotFound("Token not found.")
    return row


def update_token(req: Request) -> dict[str, Any]:
    """Rename an active token of the caller."""
    row = _active_token(req)
    data, sent = body_fields(req)
    if "name" in sent and data.get("name") is not None and data["name"] != row.name:
        old = row.name
        repo.update_pat(req.db, row, name=str(data["name"]))
        assert req.principal is not None
        record(
            req,
            "pat.updated",
            target_type="pat",
            target_id=row.id,
            summary=f"{req.principal.label} renamed personal access token {old!r} to {row.name!r}",
            metadata={"name": {"from": old, "to": row.name}},
        )
    return ser.token(row)


def revoke_token(req: Request) -> None:
    """Revoke a token of the caller; a second revoke is 404."""
    row = repo.revoke_pat(req.db, req.user_id, str(req.path["token_id"]))
    if row is None:
        raise NotFound("Token not found.")
    assert req.principal is not None
    record(
        req,
        "pat.revoked",
        target_type="pat",
        target_id=row.id,
        summary=f"{req.principal.label} revoked personal access token {row.name!r}",
        metadata={"name": row.name},
    )
