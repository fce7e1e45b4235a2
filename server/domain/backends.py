"""Gateway backends: a provider of the workspace plus an upstream model; unique names, health
from probes, statistics from the request log, and no deletion while a route uses one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain.errors import Conflict, NotFound
from server.domain.listing import Window
from server.domain.providers import ProbeOutcome, provider_config, scrub
from server.domain.secrets import SecretBox
from server.domain.unit import UnitOfWork
from server.domain.values import plain, text
from server.gateway.config import BackendConfig
from server.security import new_id
from server.storage import gateway as gateway_rows
from server.storage import rows
from server.storage.gateway_models import GatewayBackend, Provider

NAME_TAKEN = "A backend with this name already exists in the workspace."
# The window of a backend's statistics.
STATS_WINDOW = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class BackendStats:
    """A backend's traffic over the last ``window_seconds``, from the request log."""

    window_seconds: int
    requests: int
    errors: int
    p50_ms: int | None
    tokens: int


@dataclass(frozen=True, slots=True)
class BackendTestResult:
    """A backend test as the API shows it."""

    ok: bool
    latency_ms: int | None
    health: str
    error: str | None


def list_backends(
    uow: UnitOfWork,
    workspace_id: str,
    *,
    provider_id: str | None,
    enabled: bool | None,
    health: str | None,
    window: Window,
) -> tuple[Sequence[GatewayBackend], int | None]:
    """The workspace's backends in ``window``, and their count if asked."""
    filters: dict[str, Any] = {
        "workspace_id": workspace_id,
        "provider_id": provider_id,
        "enabled": enabled,
        "health": health,
    }
    found = rows.list_by(
        uow.db,
        GatewayBackend,
        after=window.after,
        order=window.direction,
        limit=window.limit,
        **filters,
    )
    if not window.include_total:
        return found, None
    return found, rows.count_by(uow.db, GatewayBackend, **filters)


def get_backend(uow: UnitOfWork, workspace_id: str, backend_id: str) -> GatewayBackend:
    """The workspace's backend, or not found."""
    backend = rows.get(uow.db, GatewayBackend, backend_id, workspace_id=workspace_id)
    if backend is None:
        raise NotFound("Backend not found.")
    return backend


def backend_stats(uow: UnitOfWork, backend: GatewayBackend) -> BackendStats:
    """The backend's requests, errors, median latency and tokens over ``STATS_WINDOW``."""
    since = uow.now - STATS_WINDOW
    found = gateway_rows.backend_traffic(uow.db, backend.id, since=since)
    return BackendStats(
        window_seconds=int(STATS_WINDOW.total_seconds()),
        requests=found.requests,
        errors=found.errors,
        p50_ms=found.p50_ms,
        tokens=found.tokens,
    )


def create_backend(
    uow: UnitOfWork, workspace_id: str, request: models.BackendCreate
) -> GatewayBackend:
    """A backend of one of the workspace's providers (404 for another's or none); its health
    is unknown until a probe or a call. A taken name is a conflict."""
    name = text(request.name)
    provider_id = text(request.provider_id)
    providers = gateway_rows.providers_by_id(uow.db, workspace_id, [provider_id], lock=True)
    if provider_id not in providers:
        raise NotFound("Provider not found.")
    if rows.find(uow.db, GatewayBackend, workspace_id=workspace_id, name=name) is not None:
        raise Conflict(NAME_TAKEN, code="already_exists")
    try:
        backend = rows.add(
            uow.db,
            GatewayBackend(
                id=new_id("bke_"),
                workspace_id=workspace_id,
                name=name,
                provider_id=provider_id,
                upstream_model=text(request.upstream_model),
                weight=int(plain(request.weight)),
                timeout_ms=int(plain(request.timeout_ms)),
                enabled=bool(request.enabled),
                health="unknown",
                health_checked_at=None,
                health_error=None,
                created_at=uow.now,
                updated_at=uow.now,
            ),
        )
    except IntegrityError:  # the name was taken, or the provider deleted, meanwhile
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "gateway.backend.created",
        workspace_id=workspace_id,
        target_type="gateway_backend",
        target_id=backend.id,
        summary=(
            f"{uow.actor.label} created backend {backend.name} "
            f"({providers[provider_id].name}: {backend.upstream_model})"
        ),
        metadata=_public_facts(backend),
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return backend


def update_backend(
    uow: UnitOfWork, workspace_id: str, backend_id: str, request: models.BackendUpdate
) -> GatewayBackend:
    """Enable or disable a backend, or change its name, model, weight or timeout. Only a
    real change is recorded."""
    backend = get_backend(uow, workspace_id, backend_id)
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    for field in ("name", "upstream_model", "weight", "timeout_ms", "enabled"):
        value = plain(getattr(request, field)) if field in sent else None
        if value is None or value == getattr(backend, field):
            continue
        if field == "name" and _name_taken(uow, workspace_id, value):
            raise Conflict(NAME_TAKEN, code="already_exists")
        changes[field] = {"from": getattr(backend, field), "to": value}
        setattr(backend, field, value)
    if not changes:
        return backend
    backend.updated_at = uow.now
    try:
        uow.db.flush()
    except IntegrityError:  # the name was taken meanwhile by a concurrent request
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "gateway.backend.updated",
        workspace_id=workspace_id,
        target_type="gateway_backend",
        target_id=backend.id,
        summary=f"{uow.actor.label} updated backend {backend.name} ({', '.join(sorted(changes))})",
        metadata={"changes": changes},
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return backend


def delete_backend(uow: UnitOfWork, workspace_id: str, backend_id: str) -> None:
    """Delete a backend no route uses (409 ``backend_in_use`` otherwise)."""
    backend = gateway_rows.lock_for_delete(uow.db, GatewayBackend, backend_id, workspace_id)
    if backend is None:
        raise NotFound("Backend not found.")
    users = gateway_rows.routes_using(uow.db, backend.id)
    if users:
        raise Conflict(
            f"Backend {backend.name} is used by the route(s) {', '.join(users)}; remove it "
            "from them first.",
            code="backend_in_use",
        )
    uow.audit(
        "gateway.backend.deleted",
        workspace_id=workspace_id,
        target_type="gateway_backend",
        target_id=backend.id,
        summary=f"{uow.actor.label} deleted backend {backend.name}",
        metadata=_public_facts(backend),
    )
    try:
        gateway_rows.delete_row(uow.db, backend)
    except IntegrityError:  # a route referenced it meanwhile
        raise Conflict(
            f"Backend {backend.name} is used by a route.", code="backend_in_use"
        ) from None
    gateway_rows.bump_config_version(uow.db, workspace_id)


@dataclass(frozen=True, slots=True)
class BackendProbe:
    """What a backend test sends its probe to: the backend as the data plane sees it."""

    backend_id: str
    config: BackendConfig


def prepare_backend_test(
    uow: UnitOfWork, workspace_id: str, backend_id: str, *, secrets: SecretBox
) -> BackendProbe:
    """The first half of a backend test, in the request's transaction: what to probe. The
    probe itself is sent after that transaction has ended, holding no lock while it waits."""
    backend = get_backend(uow, workspace_id, backend_id)
    return BackendProbe(backend.id, backend_config(uow, backend, secrets))


def record_backend_test(
    uow: UnitOfWork, workspace_id: str, probe: BackendProbe, outcome: ProbeOutcome
) -> BackendTestResult:
    """The second half: the outcome becomes the backend's health (a backend deleted
    meanwhile is not found); its error never holds the provider's secrets."""
    backend = get_backend(uow, workspace_id, probe.backend_id)
    error = scrub(outcome.error, probe.config.provider)
    record_health(uow, backend, healthy=outcome.ok, error=error)
    return BackendTestResult(
        ok=outcome.ok, latency_ms=outcome.latency_ms, health=backend.health, error=error
    )


def record_health(
    uow: UnitOfWork, backend: GatewayBackend, *, healthy: bool, error: str | None
) -> None:
    """Keep what a probe or a call found as the backend's health."""
    backend.health = "healthy" if healthy else "unhealthy"
    backend.health_checked_at = uow.now
    backend.health_error = None if healthy else error
    uow.db.flush()


def backend_config(
    uow: UnitOfWork, backend: GatewayBackend, secrets: SecretBox, *, priority: int = 0
) -> BackendConfig:
    """The data plane's view of one backend, its provider's secrets opened."""
    provider = rows.get(uow.db, Provider, backend.provider_id)
    assert provider is not None  # a foreign key holds it
    return BackendConfig(
        id=backend.id,
        provider=provider_config(provider, secrets),
        upstream_model=backend.upstream_model,
        weight=backend.weight,
        timeout_ms=backend.timeout_ms,
        enabled=backend.enabled,
        priority=priority,
    )


def _name_taken(uow: UnitOfWork, workspace_id: str, name: str) -> bool:
    return rows.find(uow.db, GatewayBackend, workspace_id=workspace_id, name=name) is not None


def _public_facts(backend: GatewayBackend) -> dict[str, Any]:
    return {
        "name": backend.name,
        "provider_id": backend.provider_id,
        "upstream_model": backend.upstream_model,
        "weight": backend.weight,
        "timeout_ms": backend.timeout_ms,
        "enabled": backend.enabled,
    }
