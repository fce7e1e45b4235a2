"""The ORM schema of the AI gateway's configuration: providers, backends, routes.

Conventions are those of ``server.storage.models`` (prefixed ids, aware UTC timestamps, CHECK
constraints for enumerations, an index ending in ``created_at, id`` per listed table). Names
are unique per workspace (``already_exists``).

A provider's secrets (``api_key``, ``extra_headers``) are stored only as ciphertext
(``server.domain.secrets``); the row tells whether they are set and nothing more.

References between the three are foreign keys without ``ON DELETE`` (checked at the end of the
statement), so a backend a route uses, or a provider a backend uses, cannot be deleted on its
own, while deleting the workspace removes all of them (its ``ON DELETE CASCADE`` reaches the
routes, their links, the backends and the providers in one statement).

Lock order for changes that span these rows (``server.storage.gateway``): the workspace (the
dispatcher's admission lock), then providers, then backends, each set in id order, then routes,
and last the workspace's configuration version (``GatewayConfigVersion``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.storage.models import ID, Base
from server.storage.types import JSONDocument, UTCDateTime

__all__ = [
    "BACKEND_HEALTHS",
    "PROVIDER_TYPES",
    "ROUTE_STRATEGIES",
    "GatewayBackend",
    "GatewayConfigVersion",
    "GatewayRoute",
    "GatewayRouteBackend",
    "Provider",
]

PROVIDER_TYPES = ("openai", "anthropic", "openai_compatible", "gemini", "ollama", "local")
BACKEND_HEALTHS = ("healthy", "unhealthy", "unknown")
ROUTE_STRATEGIES = ("failover", "weighted")

NAME = String(100)
MODEL = String(200)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Provider(Base):
    """An upstream LLM API with its (encrypted) credentials."""

    __tablename__ = "providers"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint(_one_of("type", PROVIDER_TYPES), name="type"),
        Index("ix_providers_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    type: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(String(2048))
    models: Mapped[list[str]] = mapped_column(JSONDocument())
    # Fernet tokens (``server.domain.secrets``); None when the secret is not set.
    api_key_ciphertext: Mapped[str | None] = mapped_column(Text)
    extra_headers_ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def has_api_key(self) -> bool:
        return self.api_key_ciphertext is not None

    @property
    def has_headers(self) -> bool:
        return self.extra_headers_ciphertext is not None


class GatewayBackend(Base):
    """A provider plus the upstream model it is asked for."""

    __tablename__ = "gateway_backends"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint(_one_of("health", BACKEND_HEALTHS), name="health"),
        CheckConstraint("weight >= 1", name="weight"),
        CheckConstraint("timeout_ms >= 1", name="timeout_ms"),
        Index("ix_gateway_backends_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
        Index("ix_gateway_backends_provider_id", "provider_id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    # No ON DELETE: a provider a backend uses cannot be deleted (``provider_in_use``).
    provider_id: Mapped[str] = mapped_column(ID, ForeignKey("providers.id"))
    upstream_model: Mapped[str] = mapped_column(MODEL)
    weight: Mapped[int] = mapped_column(Integer)
    timeout_ms: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    health: Mapped[str] = mapped_column(String(16))
    health_checked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Why the last probe or call failed (never a secret); None when healthy or unknown.
    health_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class GatewayRouteBackend(Base):
    """One backend of a route, at its place in the route's list."""

    api_names: ClassVar[Mapping[str, str]] = {"weight": "weight_override"}

    __tablename__ = "gateway_route_backends"
    __table_args__ = (
        PrimaryKeyConstraint("route_id", "backend_id"),
        Index("ix_gateway_route_backends_backend_id", "backend_id"),
    )

    route_id: Mapped[str] = mapped_column(ID, ForeignKey("gateway_routes.id", ondelete="CASCADE"))
    # No ON DELETE: a backend a route uses cannot be deleted (``backend_in_use``).
    backend_id: Mapped[str] = mapped_column(ID, ForeignKey("gateway_backends.id"))
    position: Mapped[int] = mapped_column(Integer)
    priority: Mapped[int] = mapped_column(Integer)
    # The route's share for this backend; None for the backend's own weight.
    weight_override: Mapped[int | None] = mapped_column(Integer)


class GatewayRoute(Base):
    """Model patterns mapped to backends, with a strategy, a cache policy and a rate limit."""

    __tablename__ = "gateway_routes"
    __table_args__ = (
        UniqueConstraint("workspace_id", "name"),
        CheckConstraint(_one_of("strategy", ROUTE_STRATEGIES), name="strategy"),
        Index(
            "ix_gateway_routes_workspace_id_priority_created_at_id",
            "workspace_id",
            "priority",
            "created_at",
            "id",
        ),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NAME)
    model_patterns: Mapped[list[str]] = mapped_column(JSONDocument())
    priority: Mapped[int] = mapped_column(Integer)
    enabled: Mapped[bool] = mapped_column(Boolean)
    strategy: Mapped[str] = mapped_column(String(16))
    cache_enabled: Mapped[bool] = mapped_column(Boolean)
    cache_ttl_seconds: Mapped[int] = mapped_column(Integer)
    # Both None: no override (the credential's default limit applies).
    rate_limit_rpm: Mapped[int | None] = mapped_column(Integer)
    rate_limit_burst: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The route's backends in list order, loaded with the route (one extra query per page).
    links: Mapped[list[GatewayRouteBackend]] = relationship(
        order_by=GatewayRouteBackend.position,
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    @property
    def backends(self) -> list[GatewayRouteBackend]:
        """The route's backends as the Route schema lists them."""
        return list(self.links)

    @property
    def cache(self) -> dict[str, Any]:
        return {"enabled": self.cache_enabled, "ttl_seconds": self.cache_ttl_seconds}

    @property
    def rate_limit(self) -> dict[str, int] | None:
        if self.rate_limit_rpm is None:
            return None
        burst = self.rate_limit_burst if self.rate_limit_burst is not None else 20
        return {"requests_per_minute": self.rate_limit_rpm, "burst": burst}


class GatewayConfigVersion(Base):
    """How many times a workspace's providers, backends and routes have changed.

    Every change to them bumps it in the transaction that makes the change, so a process that
    compiled the workspace's routes can tell with one primary-key read whether they are still
    current. No row is version 0: the workspace has never changed its gateway configuration.
    """

    __tablename__ = "gateway_config_versions"

    workspace_id: Mapped[str] = mapped_column(
        ID, ForeignKey("workspaces.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(BigInteger)
