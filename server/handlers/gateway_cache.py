"""gateway_cache: the AI gateway's response cache (whichever store the app uses)."""

from __future__ import annotations

from typing import Any

from server.domain import gateway_cache
from server.runtime.context import Request


def _store(req: Request) -> Any:
    return req.state.gateway.cache


def get_cache_stats(req: Request) -> dict[str, Any]:
    """Whether a route caches, the live entries and their size, hits and misses."""
    return gateway_cache.cache_stats(req.work, _store(req), req.path["workspace_id"])


def list_cache_entries(req: Request) -> dict[str, Any]:
    """Live entries, metadata only."""
    assert req.page is not None
    found, total = _store(req).entries(
        req.work,
        req.path["workspace_id"],
        route_id=req.query.get("route_id"),
        model=req.query.get("model"),
        window=req.page,
    )
    return req.page.respond(found, key=lambda e: (e.created_at, e.key), total=total)


def get_cache_entry(req: Request) -> Any:
    """One entry with the response it serves."""
    return gateway_cache.get_entry(
        req.work, _store(req), req.path["workspace_id"], req.path["cache_key"]
    )


def delete_cache_entry(req: Request) -> None:
    gateway_cache.delete_entry(
        req.work, _store(req), req.path["workspace_id"], req.path["cache_key"]
    )


def purge_cache_entries(req: Request) -> None:
    """Purge a route's or a model's entries, or with ``confirm=true`` all of them."""
    gateway_cache.purge(
        req.work,
        _store(req),
        req.path["workspace_id"],
        route_id=req.query.get("route_id"),
        model=req.query.get("model"),
        confirm=bool(req.query.get("confirm", False)),
    )
