"""What a handler receives (``Request``) and what it may return (``Reply``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from server.domain.unit import SYSTEM, Origin, UnitOfWork

if TYPE_CHECKING:
    from server.domain.actors import Principal
    from server.runtime.pagination import PageRequest
    from server.state import AppState


@dataclass(frozen=True, slots=True)
class Cookie:
    """A cookie to set (or, with ``max_age=0``, to clear) on the response."""

    name: str
    value: str
    max_age: int | None = None
    http_only: bool = True
    same_site: str = "Lax"
    secure: bool = False
    path: str = "/"


@dataclass(slots=True)
class Reply:
    """A handler's answer when a bare JSON value (200) or ``None`` (204) is not enough."""

    body: Any = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[Cookie] = field(default_factory=list)
    media_type: str = "application/json"


@dataclass(frozen=True, slots=True)
class AfterCommit:
    """A handler's answer to produce after its transaction has ended: ``produce()`` returns
    what the handler would have returned (slow work that needs no database, as a call to an
    upstream service, then holds neither a connection nor a lock)."""

    produce: Callable[[], Any]


@dataclass(slots=True)
class Request:
    """One validated request, as a handler sees it.

    ``path``, ``query``, ``headers`` and ``cookies`` hold the operation's declared parameters,
    typed, keyed by their names in the spec. ``body`` is the generated pydantic model when the
    spec names a component schema, else the decoded value. ``role`` is the caller's effective
    role in the workspace of the path, when the operation is workspace-scoped.
    """

    operation_id: str
    path: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    cookies: dict[str, Any]
    body: Any
    principal: Principal | None
    role: str | None
    page: PageRequest | None
    request_id: str
    client_ip: str | None
    user_agent: str | None
    state: AppState
    _session: Callable[[], Session]
    _work: UnitOfWork | None = None

    @property
    def db(self) -> Session:
        """The request's database session, opened on first use; committed when the handler
        returns, rolled back if it raises."""
        return self._session()

    @property
    def work(self) -> UnitOfWork:
        """The request's unit of work: its transaction, its caller (``system`` on a public
        operation), the moment it is served and where it came from."""
        if self._work is None:
            self._work = UnitOfWork(
                self._session,
                self.principal if self.principal is not None else SYSTEM,
                self.state.clock(),
                Origin(self.client_ip, self.user_agent, self.request_id),
            )
        return self._work

    @property
    def user_id(self) -> str:
        """The authenticated user's id (operations whose least role requires a user)."""
        assert self.principal is not None and self.principal.user_id is not None
        return self.principal.user_id
