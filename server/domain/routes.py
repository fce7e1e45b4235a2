"""Gateway routes: model patterns mapped to the workspace's backends, tried by priority, with a
strategy, a cache policy and an optional rate limit. Names are unique per workspace."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.listing import Window
from server.domain.unit import UnitOfWork
from server.domain.values import plain, text
from server.security import new_id
from server.storage import gateway as gateway_rows
from server.storage import rows
from server.storage.gateway_models import GatewayRoute, GatewayRouteBackend

NAME_TAKEN = "A route with this name already exists in the workspace."
DEFAULT_CACHE_TTL_SECONDS = 300
DEFAULT_BURST = 20
_PRIORITY_DIGITS = 5  # RoutePriority's maximum, 10000, has five


def page_key(route: GatewayRoute) -> tuple[datetime, str]:
    """A route's place in the list (priority, created_at, id), in the runtime's cursor shape
    ``(created_at, text)``: the priority travels, zero-padded, in front of the id."""
    return route.created_at, f"{route.priority:0{_PRIORITY_DIGITS}d}:{route.id}"


def _after(window: Window) -> gateway_rows.RouteKey | None:
    if window.after is None:
        return None
    created_at, keyed = window.after
    priority, _, route_id = keyed.partition(":")
    return int(priority), created_at, route_id


def list_routes(
    uow: UnitOfWork, workspace_id: str, *, enabled: bool | None, window: Window
) -> tuple[Sequence[GatewayRoute], int | None]:
    """The workspace's routes in the order the gateway tries them, and their count if asked."""
    found = gateway_rows.list_routes(
        uow.db, workspace_id, after=_after(window), limit=window.limit, enabled=enabled
    )
    if not window.include_total:
        return found, None
    return found, rows.count_by(uow.db, GatewayRoute, workspace_id=workspace_id, enabled=enabled)


def get_route(uow: UnitOfWork, workspace_id: str, route_id: str) -> GatewayRoute:
    """The workspace's route, or not found."""
    route = rows.get(uow.db, GatewayRoute, route_id, workspace_id=workspace_id)
    if route is None:
        raise NotFound("Route not found.")
    return route


def create_route(uow: UnitOfWork, workspace_id: str, request: models.RouteCreate) -> GatewayRoute:
    """A route over backends of this workspace (404 for another's or none, each at most once).
    A taken name is a conflict."""
    name = text(request.name)
    if rows.find(uow.db, GatewayRoute, workspace_id=workspace_id, name=name) is not None:
        raise Conflict(NAME_TAKEN, code="already_exists")
    cache = plain(request.cache)
    limit = plain(request.rate_limit)
    route = GatewayRoute(
        id=new_id("rte_"),
        workspace_id=workspace_id,
        name=name,
        model_patterns=_patterns(request.model_patterns),
        priority=int(plain(request.priority)),
        enabled=bool(request.enabled),
        strategy=text(request.strategy),
        cache_enabled=bool(cache.enabled)
        if cache is not None and cache.enabled is not None
        else False,
        cache_ttl_seconds=(
            int(cache.ttl_seconds)
            if cache is not None and cache.ttl_seconds is not None
            else DEFAULT_CACHE_TTL_SECONDS
        ),
        rate_limit_rpm=None,
        rate_limit_burst=None,
        created_at=uow.now,
        updated_at=uow.now,
    )
    _set_rate_limit(route, limit)
    route.links = _links(uow, workspace_id, route.id, request.backends, existing=[])
    try:
        rows.add(uow.db, route)
    except IntegrityError:  # taken meanwhile by a concurrent request
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "gateway.route.created",
        workspace_id=workspace_id,
        target_type="gateway_route",
        target_id=route.id,
        summary=f"{uow.actor.label} created route {route.name} ({', '.join(route.model_patterns)})",
        metadata=_public_facts(route),
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return route


def update_route(
    uow: UnitOfWork, workspace_id: str, route_id: str, request: models.RouteUpdate
) -> GatewayRoute:
    """Change a route: lists are replaced whole, ``cache`` merges field by field, a
    ``rate_limit`` replaces the override and ``null`` removes it. Only a real change is
    recorded."""
    route = get_route(uow, workspace_id, route_id)
    before = _public_facts(route)
    sent = request.model_fields_set
    if "name" in sent and request.name is not None and text(request.name) != route.name:
        name = text(request.name)
        if rows.find(uow.db, GatewayRoute, workspace_id=workspace_id, name=name) is not None:
            raise Conflict(NAME_TAKEN, code="already_exists")
        route.name = name
    if "model_patterns" in sent and request.model_patterns is not None:
        route.model_patterns = _patterns(request.model_patterns)
    if "priority" in sent and request.priority is not None:
        route.priority = int(plain(request.priority))
    if "enabled" in sent and request.enabled is not None:
        route.enabled = bool(request.enabled)
    if "strategy" in sent and request.strategy is not None:
        route.strategy = text(request.strategy)
    if "cache" in sent and request.cache is not None:
        cache = request.cache
        if cache.enabled is not None:
            route.cache_enabled = bool(cache.enabled)
        if cache.ttl_seconds is not None:
            route.cache_ttl_seconds = int(cache.ttl_seconds)
    if "rate_limit" in sent:
        _set_rate_limit(route, plain(request.rate_limit))
    if "backends" in sent and request.backends is not None:
        route.links = _links(uow, workspace_id, route.id, request.backends, existing=route.links)
    after = _public_facts(route)
    changes = {k: {"from": before[k], "to": after[k]} for k in after if after[k] != before[k]}
    if not changes:
        return route
    route.updated_at = uow.now
    try:
        uow.db.flush()
    except IntegrityError:  # the name was taken meanwhile by a concurrent request
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "gateway.route.updated",
        workspace_id=workspace_id,
        target_type="gateway_route",
        target_id=route.id,
        summary=f"{uow.actor.label} updated route {route.name} ({', '.join(sorted(changes))})",
        metadata={"changes": changes},
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return route


def delete_route(uow: UnitOfWork, workspace_id: str, route_id: str) -> None:
    """Delete a route (its backends stay; its cached responses expire or are purged)."""
    route = get_route(uow, workspace_id, route_id)
    uow.audit(
        "gateway.route.deleted",
        workspace_id=workspace_id,
        target_type="gateway_route",
        target_id=route.id,
        summary=f"{uow.actor.label} deleted route {route.name}",
        metadata=_public_facts(route),
    )
    gateway_rows.delete_row(uow.db, route)
    gateway_rows.bump_config_version(uow.db, workspace_id)


def _patterns(values: Any) -> list[str]:
    return list(dict.fromkeys(text(v) for v in (values or [])))


def _set_rate_limit(route: GatewayRoute, limit: Any) -> None:
    if limit is None:
        route.rate_limit_rpm = route.rate_limit_burst = None
        return
    route.rate_limit_rpm = int(limit.requests_per_minute)
    route.rate_limit_burst = int(limit.burst) if limit.burst is not None else DEFAULT_BURST


def _links(
    uow: UnitOfWork,
    workspace_id: str,
    route_id: str,
    requested: Any,
    *,
    existing: Sequence[GatewayRouteBackend],
) -> list[GatewayRouteBackend]:
    """The route's backend list as requested: each a backend of the workspace (locked against
    deletion until the change commits), at most once. Links already there are updated in
    place, so a kept backend is never removed and added again."""
    entries = list(plain(requested) or [])
    ids = [text(entry.backend_id) for entry in entries]
    found = gateway_rows.backends_for_update(uow.db, workspace_id, ids)
    missing = list(dict.fromkeys(i for i in ids if i not in found))
    if missing:
        raise NotFound(f"Backend not found: {', '.join(missing)}.")
    repeated = {i for i in ids if ids.count(i) > 1}
    if repeated:
        raise Invalid(
            "A route lists each backend at most once.",
            errors=[
                (f"body.backends[{n}].backend_id", "is listed more than once")
                for n, i in enumerate(ids)
                if i in repeated
            ],
        )
    kept = {link.backend_id: link for link in existing}
    result: list[GatewayRouteBackend] = []
    for position, (backend_id, entry) in enumerate(zip(ids, entries, strict=True)):
        link = kept.get(backend_id) or GatewayRouteBackend(route_id=route_id, backend_id=backend_id)
        link.position = position
        link.priority = int(entry.priority) if entry.priority is not None else 0
        weight = plain(entry.weight)
        link.weight_override = int(weight) if weight is not None else None
        result.append(link)
    return result


def _public_facts(route: GatewayRoute) -> dict[str, Any]:
    return {
        "name": route.name,
        "model_patterns": list(route.model_patterns),
        "priority": route.priority,
        "enabled": route.enabled,
        "strategy": route.strategy,
        "backends": [
            {
                "backend_id": link.backend_id,
                "priority": link.priority,
                "weight": link.weight_override,
            }
            for link in route.links
        ],
        "cache": route.cache,
        "rate_limit": route.rate_limit,
    }
