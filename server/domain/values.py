"""Plain values out of the generated request models.

The generated models wrap constrained strings in root models (``DisplayName``, ``Timestamp``)
and enumerations in ``StrEnum``s; domain functions read them through these helpers so the
rules see ``str`` and ``datetime``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

from pydantic import RootModel

from server.domain.errors import Invalid


@overload
def plain(value: None) -> None: ...
@overload
def plain(value: Any) -> Any: ...
def plain(value: Any) -> Any:
    """``value`` unwrapped from its root model, if it is one."""
    while isinstance(value, RootModel):
        value = value.root
    return value


def text(value: Any) -> str:
    """A required string field as ``str`` (enum members as their value)."""
    return str(getattr(plain(value), "value", plain(value)))


def optional_text(value: Any) -> str | None:
    """An optional string field as ``str`` or None."""
    return None if plain(value) is None else text(value)


def as_datetime(value: Any, field: str) -> datetime:
    """An aware UTC datetime from an RFC 3339 string (the schema has checked its format).

    What Python still cannot read (a leap second, a year 0) is refused on ``field``.
    """
    value = plain(value)
    if isinstance(value, datetime):
        stamp = value
    else:
        raw = str(value).strip()
        if raw.endswith(("z", "Z")):
            raw = raw[:-1] + "+00:00"
        try:
            stamp = datetime.fromisoformat(raw)
        except ValueError:
            raise Invalid(
                "A timestamp is not a valid RFC 3339 date-time.",
                errors=[(field, "is not a valid RFC 3339 date-time")],
            ) from None
    if stamp.tzinfo is None or stamp.utcoffset() is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC)


def optional_datetime(value: Any, field: str) -> datetime | None:
    """``as_datetime`` for a nullable field."""
    return None if plain(value) is None else as_datetime(value, field)


def unique(values: Any) -> list[str]:
    """A list field's values as strings, first occurrence kept."""
    return list(dict.fromkeys(text(v) for v in (values or [])))
