"""The part of a list request the domain needs: where the page starts, which way, how many."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Protocol

Direction = Literal["asc", "desc"]


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
