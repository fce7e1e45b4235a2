"""Response bodies: orjson writes what the standard encoder with ``json_default`` would mean."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from server.runtime.dispatch import encode_json, json_default


class Thing(BaseModel):
    name: str
    at: datetime


def _standard(value: Any) -> Any:
    """The value as the standard encoder with ``json_default`` writes it, read back."""
    return json.loads(json.dumps(value, default=json_default, ensure_ascii=False))


CASES: dict[str, Any] = {
    "aware datetime, not UTC": datetime(2026, 11, 22, 20, 0, tzinfo=timezone(timedelta(hours=2))),
    "naive datetime (UTC)": datetime(2026, 11, 22, 18, 0, 0, 123456),
    "UTC datetime": datetime(2026, 11, 22, 18, 0, tzinfo=UTC),
    "date": date(2026, 11, 22),
    "model": Thing(name="é", at=datetime(2026, 1, 1, tzinfo=UTC)),
    "set and tuple": {"set": {3}, "tuple": (1, "a")},
    "keys that are not strings": {7: "a", 2.5: "b", True: "c", None: "d"},
    "beyond 64 bits": {"big": 2**70, "negative": -(2**70)},
    "deep": [[[[["x"]]]]],
    "non-ASCII and controls": {"name": "Grüße \u2028 \x00 😀"},
}


@pytest.mark.parametrize("case", CASES)
def test_the_body_means_what_the_standard_encoder_writes(case: str) -> None:
    value = CASES[case]
    body = encode_json(value)
    assert isinstance(body, bytes)
    assert json.loads(body) == _standard(value)


def test_datetimes_are_rfc3339_in_utc_with_z() -> None:
    stamp = datetime(2026, 11, 22, 20, 0, tzinfo=timezone(timedelta(hours=2)))
    assert encode_json({"at": stamp}) == b'{"at":"2026-11-22T18:00:00Z"}'


def test_nesting_beyond_orjsons_limit_falls_back() -> None:
    value: Any = "leaf"
    for _ in range(300):
        value = [value]
    assert json.loads(encode_json(value)) == value


def test_the_fallback_writes_the_same_compact_style() -> None:
    assert (
        encode_json({"big": 2**70, "list": [1, 2]})
        == b'{"big":1180591620717411303424,"list":[1,2]}'
    )


def test_a_float_json_cannot_hold_is_null_not_invalid_json() -> None:
    # The standard encoder writes NaN and Infinity, which no JSON parser has to accept.
    assert encode_json([float("nan"), float("inf"), -float("inf")]) == b"[null,null,null]"


def test_what_neither_encoder_knows_is_an_error() -> None:
    with pytest.raises(TypeError):
        encode_json({"x": object()})


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=30,
)


@given(json_values)
def test_any_json_value_round_trips(value: Any) -> None:
    assert json.loads(encode_json(value)) == value
