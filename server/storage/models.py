"""The ORM schema of the identity, tenancy and audit tables.

Conventions:

* ids are ``<prefix>_`` + 24 base62 characters (``server.security.new_id``), ``String(32)``;
* every timestamp is ``UTCDateTime`` (aware UTC, microseconds) and every list is keyset-paginated
  on ``(created_at, id)`` (memberships: ``(created_at, user_id)``), newest first by default, so
  each listed table has an index ending in ``created_at, id``;
* secrets are stored only as SHA-256 hex (``token_hash``/``key_hash``, unique) plus an
  8-character display ``prefix``;
* enumerations are strings guarded by CHECK constraints;
* deleting a user removes their sessions, tokens and memberships; deleting a workspace removes
  its memberships and API keys (``ON DELETE CASCADE``), while ``audit_events.workspace_id`` and
  ``api_keys.created_by`` are plain columns so history outlives what it refers to.

The one ORM relationship, a membership's user, is loaded with the membership (joined), so
nothing lazy-loads after the session is gone; elsewhere repositories join explicitly. Read-only
properties and ``api_names`` give a row the fields its API schema names, which the responses
are shaped from (``server.runtime.present``). JSON columns are not mutation-tracked: assign a
new value instead of editing the stored dict or list in place.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, validates

from server.storage.types import JSONDocument, UTCDateTime
from server.vocabulary import (
    ACTOR_TYPES,
    API_KEY_ROLES,
    CREDENTIAL_STATUSES,
    USER_STATUSES,
    WORKSPACE_ROLES,
)

__all__ = [
    "ACTOR_TYPES",
    "API_KEY_ROLES",
    "CREDENTIAL_STATUSES",
    "USER_STATUSES",
    "WORKSPACE_ROLES",
    "ApiKey",
    "AuditEvent",
    "Base",
    "Membership",
    "PersonalAccessToken",
    "RateLimitHit",
    "User",
    "UserSession",
    "Workspace",
]


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

ID = String(32)
HASH = String(64)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        UniqueConstraint("email"),
        CheckConstraint(_one_of("status", USER_STATUSES), name="status"),
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str | None] = mapped_column(String(255))
    is_superadmin: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @validates("email")
    def _lower_email(self, _key: str, value: str) -> str:
        return value.strip().lower()


class UserSession(Base):
    """A browser session; the cookie value is only ever held by the client (``token_hash``)."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        Index("ix_sessions_user_id", "user_id"),
        Index("ix_sessions_expires_at", "expires_at"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(HASH)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    absolute_expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PersonalAccessToken(Base):
    __tablename__ = "personal_access_tokens"
    __table_args__ = (
        UniqueConstraint("token_hash"),
        CheckConstraint(_one_of("status", CREDENTIAL_STATUSES), name="status"),
        Index("ix_personal_access_tokens_user_id_created_at_id", "user_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    scopes: Mapped[list[str]] = mapped_column(JSONDocument())
    prefix: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(HASH)
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Workspace(Base):
    __tablename__ = "workspaces"
    __table_args__ = (
        UniqueConstraint("slug"),
        Index("ix_workspaces_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100))
    settings: Mapped[dict[str, Any]] = mapped_column(JSONDocument())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        PrimaryKeyConstraint("workspace_id", "user_id"),
        CheckConstraint(_one_of("role", WORKSPACE_ROLES), name="role"),
        Index(
            "ix_memberships_workspace_id_created_at_user_id",
            "workspace_id",
            "created_at",
            "user_id",
        ),
        Index("ix_memberships_user_id", "user_id"),
    )

    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ID, ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The member, loaded with the membership; ``user_id`` alone says who it is (read-only here).
    user: Mapped[User] = relationship(lazy="joined", innerjoin=True, viewonly=True)

    @property
    def email(self) -> str:
        """The member's email (a Member shows it)."""
        return self.user.email

    @property
    def name(self) -> str:
        """The member's name (a Member shows it)."""
        return self.user.name


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (
        UniqueConstraint("key_hash"),
        CheckConstraint(_one_of("role", API_KEY_ROLES), name="role"),
        CheckConstraint(_one_of("status", CREDENTIAL_STATUSES), name="status"),
        Index("ix_api_keys_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ID, ForeignKey("workspaces.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(HASH)
    role: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(JSONDocument())
    status: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The creating user's id. Deliberately not a foreign key: the key outlives its creator.
    created_by: Mapped[str] = mapped_column(ID)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class AuditEvent(Base):
    """Append-only. ``workspace_id`` is NULL for instance-level events and is not a foreign key,
    so events survive the deletion of their workspace. The ``metadata`` column is mapped to the
    attribute ``metadata_`` (``metadata`` is reserved by SQLAlchemy's declarative base).

    The API shows an event through ``api_names``: the actor and target as objects, and the
    texts within the AuditEvent schema's limits. Events are clipped when written
    (``server.domain.unit``); clipping again on read keeps rows written before within them.
    """

    # The AuditEvent schema's limits.
    SUMMARY_MAX: ClassVar[int] = 500
    USER_AGENT_MAX: ClassVar[int] = 512
    LABEL_MAX: ClassVar[int] = 300
    IP_MAX: ClassVar[int] = 45

    api_names: ClassVar[Mapping[str, str]] = {
        "metadata": "metadata_",
        "summary": "shown_summary",
        "ip": "shown_ip",
        "user_agent": "shown_user_agent",
        "request_id": "shown_request_id",
    }

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(_one_of("actor_type", ACTOR_TYPES), name="actor_type"),
        Index("ix_audit_events_workspace_id_created_at_id", "workspace_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(ID, primary_key=True)
    workspace_id: Mapped[str | None] = mapped_column(ID)
    actor_type: Mapped[str] = mapped_column(String(16))
    actor_id: Mapped[str | None] = mapped_column(String(64))
    actor_label: Mapped[str | None] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64))
    summary: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDocument())
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    request_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    @property
    def actor(self) -> dict[str, str | None]:
        """Who acted: ``{type, id, label}``, the label as it was at the time."""
        return {
            "type": self.actor_type,
            "id": self.actor_id,
            "label": (self.actor_label or "")[: self.LABEL_MAX],
        }

    @property
    def target(self) -> dict[str, str]:
        """What was acted on: ``{type, id}``."""
        return {"type": self.target_type or "", "id": self.target_id or ""}

    @property
    def shown_summary(self) -> str:
        return (self.summary or "")[: self.SUMMARY_MAX]

    @property
    def shown_ip(self) -> str | None:
        return self.ip[: self.IP_MAX] if self.ip else None

    @property
    def shown_user_agent(self) -> str | None:
        return self.user_agent[: self.USER_AGENT_MAX] if self.user_agent else None

    @property
    def shown_request_id(self) -> str:
        return self.request_id or ""


class RateLimitHit(Base):
    """One counted hit of a shared rate limit (``server.storage.rate_limits``). Times are
    seconds since the epoch; a row is deleted once ``expires_at`` (its time plus the window)
    has passed."""

    __tablename__ = "rate_limit_hits"
    __table_args__ = (
        Index("ix_rate_limit_hits_key_at", "key", "at"),
        Index("ix_rate_limit_hits_expires_at", "expires_at"),
    )

    # INTEGER PRIMARY KEY on SQLite, where only that spelling auto-increments.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    key: Mapped[str] = mapped_column(String(255))
    at: Mapped[float] = mapped_column(Double)
    expires_at: Mapped[float] = mapped_column(Double)


# Each area's tables live in a module of their own; importing them here registers them with Base
# (and so with Alembic's autogenerate).
from server.storage import definition_models as definition_models  # noqa: E402
from server.storage import gateway_models as gateway_models  # noqa: E402
from server.storage import gateway_traffic as gateway_traffic  # noqa: E402
from server.storage import prompt_models as prompt_models  # noqa: E402
from server.storage import run_models as run_models  # noqa: E402
