"""The part of a list request the domain needs: where the page starts, which way, how many."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from server.domain.unit import UnitOfWork
from server.storage import rows

Direction = Literal["asc", "desc"]
Row = TypeVar("Row")


class Window(Protocol):
    """A keyset window over a list ordered by ``(created_at, id)`` (the runtime's
    ``PageRequest`` is one): the page of ``limit`` rows after ``after`` in ``direction``.
    Storage returns one row more than the page, so the caller learns whether another follows."""

    @property
    def after(self) -> tuple[datetime, str] | None: ...

    @property
    def direction(self) -> Direction: ...

    @property
    def limit(self) -> int: ...

    @property
    def include_total(self) -> bool: ...


def listed(
    uow: UnitOfWork, model: type[Row], window: Window, **equal: Any
) -> tuple[Sequence[Row], int | None]:
    """The rows of ``model`` matching ``equal`` (``None``: any) in ``window``, and how many
    match in all when the window asks for the total: a list operation's whole storage side."""
    found = rows.list_by(
        uow.db, model, after=window.after, order=window.direction, limit=window.limit, **equal
    )
    return found, rows.count_by(uow.db, model, **equal) if window.include_total else None
