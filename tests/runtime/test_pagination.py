"""Cursor signing and the page envelope."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from server.runtime.errors import BadRequest
from server.runtime.pagination import CursorCodec, list_scope, page_request

CODEC = CursorCodec(b"secret")
T0 = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def test_round_trip_keeps_microseconds() -> None:
    cursor = CODEC.encode("scope", (T0, "ws_abc"))
    assert len(cursor) <= 128
    assert CODEC.decode("scope", cursor) == (T0, "ws_abc")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),
        lambda c: "A" + c,
        lambda c: c[:10],
        lambda c: "not a cursor!",
        lambda c: "",
    ],
)
def test_tampered_cursor_is_rejected(mangle) -> None:  # type: ignore[no-untyped-def]
    cursor = CODEC.encode("scope", (T0, "ws_abc"))
    with pytest.raises(BadRequest) as caught:
        CODEC.decode("scope", mangle(cursor))
    assert caught.value.code == "invalid_cursor"


def test_cursor_from_another_list_is_rejected() -> None:
    a = list_scope("listMembers", {"workspace_id": "ws_a"}, "desc")
    b = list_scope("listMembers", {"workspace_id": "ws_b"}, "desc")
    c = list_scope("listMembers", {"workspace_id": "ws_a"}, "asc")
    cursor = CODEC.encode(a, (T0, "usr_1"))
    for other in (b, c):
        with pytest.raises(BadRequest):
            CODEC.decode(other, cursor)


def test_cursor_from_another_secret_is_rejected() -> None:
    cursor = CursorCodec(b"other").encode("s", (T0, "x"))
    with pytest.raises(BadRequest):
        CODEC.decode("s", cursor)


def test_respond_builds_the_envelope() -> None:
    req = page_request("listThings", {}, {"limit": 2, "include_total": True}, CODEC)
    rows = [(T0 - timedelta(seconds=i), f"id{i}") for i in range(3)]
    body = req.respond(rows, lambda r: {"id": r[1]}, key=lambda r: r, total=3)
    assert body["items"] == [{"id": "id0"}, {"id": "id1"}]
    assert body["total"] == 3
    after = page_request("listThings", {}, {"limit": 2, "cursor": body["next_cursor"]}, CODEC)
    assert after.after == rows[1]
    last = after.respond(rows[2:], lambda r: {"id": r[1]}, key=lambda r: r)
    assert last == {"items": [{"id": "id2"}], "next_cursor": None}
