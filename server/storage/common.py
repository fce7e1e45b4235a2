"""Shared pieces of the repositories: keyset pagination, the UNSET sentinel, errors."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Final, Literal, TypeVar

from sqlalchemy import Select, String, literal, tuple_
from sqlalchemy.orm import InstrumentedAttribute

from server.storage.types import UTCDateTime

__all__ = [
    "UNSET",
    "Cursor",
    "LastOwnerError",
    "Order",
    "StorageError",
    "Unset",
    "apply_keyset",
]

Order = Literal["asc", "desc"]
# The keyset position of a row: (created_at, id). For memberships the id is the user_id.
Cursor = tuple[datetime, str]

_S = TypeVar("_S", bound=Select[Any])


class Unset(enum.Enum):
    """Type of ``UNSET``: "leave this field as it is" in update functions (``None`` clears)."""

    UNSET = "UNSET"


UNSET: Final = Unset.UNSET


class StorageError(Exception):
    """Base of the domain errors the repositories raise (handlers map them to problems)."""


class LastOwnerError(StorageError):
    """The change would leave a workspace without an owner (maps to 409 ``last_owner``)."""


def apply_keyset(
    stmt: _S,
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[str],
    *,
    after: Cursor | None,
    order: Order,
    limit: int,
) -> _S:
    """Order ``stmt`` by ``(created_col, id_col)``, start strictly after ``after``, and fetch at
    most ``limit + 1`` rows (the extra row tells the caller there is a next page)."""
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', got {order!r}")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    if after is not None:
        key = tuple_(created_col, id_col)
        bound = tuple_(literal(after[0], UTCDateTime()), literal(after[1], String()))
        stmt = stmt.where(key < bound if order == "desc" else key > bound)
    if order == "desc":
        stmt = stmt.order_by(created_col.desc(), id_col.desc())
    else:
        stmt = stmt.order_by(created_col.asc(), id_col.asc())
    return stmt.limit(limit + 1)
