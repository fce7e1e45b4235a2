"""gateway_requests: the AI gateway's request log."""

from __future__ import annotations

from typing import Any

from server.domain import gateway_traffic
from server.runtime.context import Request


def list_gateway_requests(req: Request) -> dict[str, Any]:
    """The workspace's gateway calls, newest first by default."""
    assert req.page is not None
    found, total = gateway_traffic.list_requests(
        req.work, req.path["workspace_id"], req.query, window=req.page
    )
    return req.page.respond(found, total=total)
