"""Cursor pagination, the one implementation behind every list operation.

A cursor is the keyset position ``(created_at, id)`` of the last item served, bound by an HMAC
to the list it came from (operation, path parameters, order). A tampered cursor, or one taken
from another list, is rejected with 400 ``invalid_cursor`` before the handler runs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from server.runtime.errors import BadRequest, FieldError

T = TypeVar("T")
Key = tuple[datetime, str]
_MAC_BYTES = 12


class CursorCodec:
    """Signs and verifies cursors with the server's secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, scope: str, payload: bytes) -> bytes:
        return hmac.new(self._secret, scope.encode() + b"\0" + payload, hashlib.sha256).digest()[
            :_MAC_BYTES
        ]

    def encode(self, scope: str, key: Key) -> str:
        """An opaque cursor for the position ``key`` in the list named by ``scope``."""
        micros = int(key[0].timestamp() * 1_000_000)
        payload = json.dumps([micros, key[1]], separators=(",", ":")).encode()
        token = payload + self._mac(scope, payload)
        return base64.urlsafe_b64encode(token).decode().rstrip("=")

    def decode(self, scope: str, cursor: str) -> Key:
        """The position in ``cursor``, or ``BadRequest`` (invalid_cursor) if it is not ours."""
        try:
            token = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            payload, mac = token[:-_MAC_BYTES], token[-_MAC_BYTES:]
            if not hmac.compare_digest(mac, self._mac(scope, payload)):
                raise ValueError("signature")
            micros, item_id = json.loads(payload)
            if not isinstance(micros, int) or not isinstance(item_id, str):
                raise ValueError("shape")
            stamp = datetime.fromtimestamp(micros / 1_000_000, tz=UTC)
            return stamp.replace(microsecond=micros % 1_000_000), item_id
        except (ValueError, TypeError, OverflowError, OSError):
            raise BadRequest(
                "The cursor is not valid for this list.",
                code="invalid_cursor",
                errors=[FieldError("query.cursor", "is not a cursor issued for this list")],
            ) from None


@dataclass(frozen=True, slots=True)
class PageRequest:
    """What a list handler needs: page size, position, order, and whether to count."""

    limit: int
    after: Key | None
    order: str
    include_total: bool
    scope: str
    codec: CursorCodec

    @property
    def direction(self) -> Literal["asc", "desc"]:
        """``order`` as the domain's list direction."""
        return "asc" if self.order == "asc" else "desc"

    @property
    def fetch(self) -> int:
        """Rows to fetch: one more than the page, to learn whether another page exists."""
        return self.limit + 1

    def respond(
        self,
        rows: Sequence[T],
        serialize: Callable[[T], Any] | None = None,
        key: Callable[[T], Key] | None = None,
        total: int | None = None,
    ) -> dict[str, Any]:
        """The ``{items, next_cursor[, total]}`` envelope for ``rows`` (fetched with ``fetch``).

        Items are the rows themselves unless ``serialize`` is given (the operation's documented
        schema shapes them); the cursor is the last row's ``key``, by default the list
        convention's ``(created_at, id)``.
        """
        page = rows[: self.limit]
        more = len(rows) > self.limit
        key = key or _created_then_id
        body: dict[str, Any] = {
            "items": [serialize(row) for row in page] if serialize is not None else list(page),
            "next_cursor": self.codec.encode(self.scope, key(page[-1])) if more and page else None,
        }
        if self.include_total:
            body["total"] = total if total is not None else len(page)
        return body


def _created_then_id(row: Any) -> Key:
    return row.created_at, row.id


def list_scope(operation_id: str, path: Mapping[str, Any], order: str) -> str:
    """The identity of one list: a cursor is only valid for the list that issued it."""
    parts = [operation_id, order] + [f"{k}={path[k]}" for k in sorted(path)]
    return "\n".join(parts)


def page_request(
    operation_id: str, path: Mapping[str, Any], query: Mapping[str, Any], codec: CursorCodec
) -> PageRequest:
    """Read the pagination convention's parameters (already validated) for one request."""
    order = str(query.get("order", "desc"))
    scope = list_scope(operation_id, path, order)
    cursor = query.get("cursor")
    return PageRequest(
        limit=int(query.get("limit", 50)),
        after=codec.decode(scope, cursor) if cursor else None,
        order=order,
        include_total=bool(query.get("include_total", False)),
        scope=scope,
        codec=codec,
    )
