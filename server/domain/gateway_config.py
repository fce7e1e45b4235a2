"""The gateway's configuration for the data plane: a workspace's routes as plain values.

``load_routes`` is the seam between the control plane (rows, sealed secrets) and the engine in
``server.gateway`` (``RouteConfig``s, secrets opened, no ORM): every route of the workspace,
enabled or not, in the order the gateway tries them, each with its backends in theirs.

``CompiledRoutes`` keeps what ``load_routes`` made, per workspace, in each process, for as long
as it is current: every change to a workspace's providers, backends or routes bumps its
configuration version in the change's transaction (``server.storage.gateway``), and a call reads
that version (one primary-key read) before it uses what was kept. A change made by any process
or instance is therefore seen by every other on its next call, with no time-based staleness.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from server.domain.providers import provider_config
from server.domain.secrets import SecretBox
from server.domain.unit import UnitOfWork
from server.gateway.config import BackendConfig, ProviderConfig, RouteConfig
from server.storage import gateway as gateway_rows


def load_routes(uow: UnitOfWork, workspace_id: str, *, secrets: SecretBox) -> list[RouteConfig]:
    """Every route of the workspace by priority (then oldest first), with its backends by
    their priority in the route (then the route's list order) and their providers' secrets
    opened. A link's weight, when the route sets one, replaces the backend's own."""
    routes = gateway_rows.list_routes(uow.db, workspace_id, after=None, limit=None)
    backends = gateway_rows.backends_of(
        uow.db, {link.backend_id for route in routes for link in route.links}
    )
    providers = gateway_rows.providers_by_id(
        uow.db, workspace_id, {backend.provider_id for backend in backends.values()}
    )
    opened: dict[str, ProviderConfig] = {
        provider_id: provider_config(provider, secrets)
        for provider_id, provider in providers.items()
    }
    configs: list[RouteConfig] = []
    for route in routes:
        members: list[BackendConfig] = []
        for link in sorted(route.links, key=lambda link: (link.priority, link.position)):
            backend = backends[link.backend_id]
            members.append(
                BackendConfig(
                    id=backend.id,
                    provider=opened[backend.provider_id],
                    upstream_model=backend.upstream_model,
                    weight=link.weight_override or backend.weight,
                    timeout_ms=backend.timeout_ms,
                    enabled=backend.enabled,
                    priority=link.priority,
                )
            )
        limit = route.rate_limit
        configs.append(
            RouteConfig(
                id=route.id,
                name=route.name,
                model_patterns=tuple(route.model_patterns),
                priority=route.priority,
                enabled=route.enabled,
                strategy=route.strategy,  # type: ignore[arg-type]  # a CHECK constraint holds it
                backends=tuple(members),
                cache_enabled=route.cache_enabled,
                cache_ttl_seconds=route.cache_ttl_seconds,
                requests_per_minute=limit["requests_per_minute"] if limit else None,
                burst=limit["burst"] if limit else None,
            )
        )
    return configs


# Workspaces whose compiled routes a process keeps (the least recently called go first).
CAPACITY = 512


class CompiledRoutes:
    """A process's compiled routes, per workspace, at the configuration version they were
    compiled from (a bounded LRU; threads share it)."""

    def __init__(self, secrets: SecretBox, *, capacity: int = CAPACITY) -> None:
        self.secrets = secrets
        self.capacity = capacity
        self._kept: OrderedDict[str, tuple[int, tuple[RouteConfig, ...]]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many workspaces' routes are kept."""
        return len(self._kept)

    def current(self, uow: UnitOfWork, workspace_id: str) -> list[RouteConfig]:
        """The workspace's routes as ``load_routes`` gives them, compiled again only when its
        configuration has changed since they were kept.

        The version is read before the rows: a change that commits between the two reads is
        then kept under the older version, and the next call compiles it again, rather than
        an older configuration kept under the newer version."""
        version = gateway_rows.config_version(uow.db, workspace_id)
        with self._lock:
            kept = self._kept.get(workspace_id)
            if kept is not None and kept[0] == version:
                self._kept.move_to_end(workspace_id)
                return list(kept[1])
        routes = load_routes(uow, workspace_id, secrets=self.secrets)
        with self._lock:
            self._kept[workspace_id] = (version, tuple(routes))
            self._kept.move_to_end(workspace_id)
            while len(self._kept) > self.capacity:
                self._kept.popitem(last=False)
        return routes
