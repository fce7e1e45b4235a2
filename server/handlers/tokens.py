"""tokens: personal access tokens, managed with the cookie session only."""

from __future__ import annotations

from typing import Any

from server.domain import tokens
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request
from server.runtime.present import Overlay


def list_tokens(req: Request) -> dict[str, Any]:
    """The caller's tokens, active and revoked, newest first by default."""
    assert req.page is not None
    found, total = tokens.list_tokens(
        req.work, req.user_id, status=req.query.get("status"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_token(req: Request) -> Reply:
    """Issue a token; its secret appears only in this response."""
    issued = tokens.issue_token(req.work, req.user_id, req.body)
    return Reply(
        Overlay(issued.token, token=issued.secret),
        status=201,
        headers={"Location": f"{API_BASE}/tokens/{issued.token.id}"},
    )


def update_token(req: Request) -> object:
    """Rename an active token of the caller."""
    return tokens.rename_token(req.work, req.user_id, req.path["token_id"], req.body)


def revoke_token(req: Request) -> None:
    """Revoke a token of the caller; a second revoke is 404."""
    tokens.revoke_token(req.work, req.user_id, req.path["token_id"])
