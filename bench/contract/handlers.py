"""The handler work every variant of the bench shares, byte for byte.

Each variant (``bench.contract.apps``) only adapts its framework's request to these functions
and their results to its framework's response; the store, the cursor codec, the bearer check
and the JSON encoding are the same objects everywhere, so the variants differ only in what the
framework does around them.

The store is an in-memory list of 1,000 items, newest first. ``create_item`` builds and returns
the new item without keeping it, so a long HTTP run neither grows memory nor slows the list.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from server.runtime.dispatch import encode_json
from server.runtime.errors import NotFound, Unauthenticated
from server.runtime.pagination import CursorCodec, Key, list_scope

TOKEN = "bench-token-0123456789"
AUTHORIZATION = f"Bearer {TOKEN}"
CODEC = CursorCodec(b"bench-secret")
LIST_SCOPE = list_scope("listItems", {}, "desc")  # what Gantry's page_request signs with
PAGE_SIZE = 20
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _seed(count: int = 1000) -> list[dict[str, Any]]:
    items = []
    for n in range(count):
        created = _EPOCH + timedelta(seconds=n)
        items.append(
            {
                "id": f"itm_{n:08x}",
                "name": f"item {n}",
                "price": round(n * 1.25, 2),
                "tags": ["bench", f"t{n % 7}"],
                "quantity": n % 50,
                "description": None if n % 3 else f"the item number {n}",
                "created_at": _stamp(created),
                "_key": (created, f"itm_{n:08x}"),
            }
        )
    items.sort(key=lambda item: item["_key"], reverse=True)  # newest first
    return items


ITEMS = _seed()
BY_ID = {item["id"]: item for item in ITEMS}
_KEYS_ASC = sorted(item["_key"] for item in ITEMS)  # for the binary search after a cursor
ITEM_FIELDS = ("id", "name", "price", "tags", "quantity", "description", "created_at")


def public(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as the API returns it (a fresh dict: handlers never share mutable state)."""
    return {name: item[name] for name in ITEM_FIELDS}


# ── the handler work ────────────────────────────────────────────────────────────────────────


def check_bearer(authorization: str | None) -> None:
    """The bench's whole auth: one fixed bearer token (401 otherwise)."""
    if authorization != AUTHORIZATION:
        raise Unauthenticated("A valid bearer token is required.")


def bearer_info(token: str) -> dict[str, Any] | None:
    """Connexion's ``x-bearerInfoFunc``: the same check, in Connexion's calling convention."""
    return {"sub": "bench"} if token == TOKEN else None


def decode_cursor(cursor: str) -> Key:
    """The position a cursor stands for (400 ``invalid_cursor`` when it is not ours)."""
    return CODEC.decode(LIST_SCOPE, cursor)


def list_items(limit: int, after: Key | None) -> dict[str, Any]:
    """One page of the list, newest first, after the position ``after``."""
    # ITEMS is newest first: the page starts at the first item strictly older than ``after``.
    start = 0 if after is None else len(ITEMS) - bisect.bisect_left(_KEYS_ASC, after)
    page = ITEMS[start : start + limit + 1]
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [public(item) for item in page],
        "next_cursor": CODEC.encode(LIST_SCOPE, page[-1]["_key"]) if more and page else None,
    }


def get_item(item_id: str) -> dict[str, Any]:
    """One item (404 when unknown)."""
    item = BY_ID.get(item_id)
    if item is None:
        raise NotFound("Item not found.")
    return public(item)


def create_item(
    name: str,
    price: float,
    tags: list[str] | None,
    quantity: int,
    description: str | None,
) -> dict[str, Any]:
    """The item a create would store (it is returned, not kept)."""
    created = _EPOCH + timedelta(days=365)
    return {
        "id": "itm_ffffffff",
        "name": name,
        "price": price,
        "tags": list(tags or ()),
        "quantity": quantity,
        "description": description,
        "created_at": _stamp(created),
    }


# The JSON encoding every Flask variant uses: the very function Gantry's ``render`` uses.
dumps = encode_json


__all__ = [
    "AUTHORIZATION",
    "CODEC",
    "TOKEN",
    "bearer_info",
    "check_bearer",
    "create_item",
    "decode_cursor",
    "dumps",
    "get_item",
    "list_items",
]
