"""gateway_routes: model patterns mapped to backends, in the order the gateway tries them."""

from __future__ import annotations

from typing import Any

from server.domain import routes
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request


def list_routes(req: Request) -> dict[str, Any]:
    """The workspace's routes by priority, then oldest first."""
    assert req.page is not None
    found, total = routes.list_routes(
        req.work, req.path["workspace_id"], enabled=req.query.get("enabled"), window=req.page
    )
    return req.page.respond(found, key=routes.page_key, total=total)


def create_route(req: Request) -> Reply:
    """Create a route over backends of this workspace."""
    route = routes.create_route(req.work, req.path["workspace_id"], req.body)
    return Reply(route, status=201, headers={"Location": f"{API_BASE}/gateway/routes/{route.id}"})


def get_route(req: Request) -> Any:
    """One route of the workspace that owns it."""
    return routes.get_route(req.work, req.path["workspace_id"], req.path["route_id"])


def update_route(req: Request) -> Any:
    """Change a route's patterns, backends, strategy, cache or rate limit."""
    return routes.update_route(req.work, req.path["workspace_id"], req.path["route_id"], req.body)


def delete_route(req: Request) -> None:
    """Delete a route."""
    routes.delete_route(req.work, req.path["workspace_id"], req.path["route_id"])
