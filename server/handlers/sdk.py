"""sdk: what running applications fetch, revalidated with ETags."""

from __future__ import annotations

from server.domain import sdk
from server.runtime.context import Reply, Request

# The answer depends on the credential (so no shared cache may keep it); a client may keep it
# but revalidates it (If-None-Match) before each use, so a publish is seen on the next fetch.
CACHE_CONTROL = "private, max-age=0, must-revalidate"
VARY = "Authorization, X-Workspace-Id"


def fetch_sdk_prompt(req: Request) -> Reply:
    """The published content for ``key``; 304 when the client's copy is current."""
    assert req.principal is not None
    query = req.query
    served = sdk.fetch(
        req.work,
        req.path["key"],
        caller=req.principal,
        named_workspace=req.headers.get(sdk.WORKSPACE_HEADER),
        env=query.get("env"),
        version=query.get("version"),
        client_id=query.get("client_id"),
    )
    etag = f'"{served.fingerprint}"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL, "Vary": VARY}
    if _matches(req.headers.get("If-None-Match"), etag):
        return Reply(None, status=304, headers=headers)
    return Reply(served, headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """Whether ``If-None-Match`` names ``etag`` (RFC 9110: ``*``, a list, weak comparison)."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(
        candidate.strip().removeprefix("W/") == etag for candidate in if_none_match.split(",")
    )
