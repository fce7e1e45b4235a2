"""The unit of work a domain function runs in: one transaction, one actor, one moment.

The transaction belongs to whoever opened the unit (the HTTP dispatcher commits or rolls back
around the handler; ``unit_of_work`` does it for bootstrap and background jobs). Domain
functions flush, never commit, so a refused change leaves nothing half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from server.storage import audit as audit_rows

# Limits of the AuditEvent schema, applied where events are written.
_SUMMARY_MAX = 500
_USER_AGENT_MAX = 512
_LABEL_MAX = 300


class Actor(Protocol):
    """Who acts: a user (by session or token), an API key, or the system itself."""

    @property
    def actor_type(self) -> str: ...

    @property
    def actor_id(self) -> str | None: ...

    @property
    def label(self) -> str: ...

    @property
    def user_id(self) -> str | None: ...

    @property
    def is_superadmin(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class SystemActor:
    """The instance itself: bootstrap, schedulers, lease reapers."""

    actor_type: str = "system"
    actor_id: str | None = None
    label: str = "system"
    user_id: str | None = None
    is_superadmin: bool = True


SYSTEM = SystemActor()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a change came from, for the audit trail (empty for background work)."""

    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


@dataclass(slots=True)
class UnitOfWork:
    """One transaction's worth of domain work by one actor at one moment."""

    session: Callable[[], Session]
    actor: Actor
    now: datetime
    origin: Origin = field(default_factory=Origin)

    @property
    def db(self) -> Session:
        """The transaction's session (opened on first use by its owner)."""
        return self.session()

    def audit(
        self,
        action: str,
        *,
        target_type: str,
        target_id: str,
        summary: str,
        workspace_id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        """Append one audit event (``resource.verb``) by this unit's actor, in its transaction,
        so it commits or rolls back with the change it describes."""
        actor, origin = self.actor, self.origin
        audit_rows.append_audit_event(
            self.db,
            workspace_id=workspace_id,
            actor_type=actor.actor_type,
            actor_id=actor.actor_id,
            actor_label=actor.label[:_LABEL_MAX],
            action=action,
            target_type=target_type,
            target_id=target_id,
            summary=summary[:_SUMMARY_MAX],
            metadata=_json_safe(metadata or {}),
            ip=origin.ip,
            user_agent=(origin.user_agent or "")[:_USER_AGENT_MAX] or None,
            request_id=origin.request_id,
            now=self.now,
        )


@contextmanager
def unit_of_work(
    sessions: Callable[[], Session], actor: Actor = SYSTEM, *, now: datetime | None = None
) -> Iterator[UnitOfWork]:
    """A unit for work no HTTP request drives: committed if the block ends, rolled back if
    it raises."""
    session = sessions()
    try:
        yield UnitOfWork(lambda: session, actor, now or datetime.now(UTC))
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def rfc3339(stamp: datetime) -> str:
    """``stamp`` as an RFC 3339 UTC string with a ``Z``."""
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json_safe(value: Any) -> Any:
    """Audit metadata as JSON values: datetimes as RFC 3339, enums as their values."""
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(v) for v in value]
    enum_value = getattr(value, "value", None)
    if enum_value is not None and isinstance(value, str):  # a StrEnum member
        return enum_value
    return value
