"""The JSON body decoder: UTF-8 I-JSON or a 400/415 problem naming what is wrong."""

from __future__ import annotations

import json

import pytest

from server.runtime.errors import BadRequest, UnsupportedMediaType
from server.runtime.json_body import MAX_DEPTH, check_json_charset, decode_json_body


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b'{"a": [1, {"b": null}], "c": "\\u00e9"}', {"a": [1, {"b": None}], "c": "\u00e9"}),
        (b'"\\ud83d\\ude00"', "\U0001f600"),  # an escaped surrogate pair is one character
        (b'"\\\\u0000"', "\\u0000"),  # an escaped backslash, then text: no NUL
        (b'[{"a": 1}, {"a": 2}]', [{"a": 1}, {"a": 2}]),  # the same name in two objects
        (b'"[[[[' + b"[" * MAX_DEPTH + b'"', "[[[[" + "[" * MAX_DEPTH),  # brackets in a string
        (_nested(MAX_DEPTH), json.loads(_nested(MAX_DEPTH))),
    ],
)
def test_accepted(data: bytes, value: object) -> None:
    assert decode_json_body(data) == value


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'"\xed\xa0\x80"', "is not UTF-8 text"),  # an encoded surrogate
        (b'"\xff"', "is not UTF-8 text"),
        ('{"a": 1}'.encode("utf-16"), "is not UTF-8 text"),
        (b"\xef\xbb\xbf{}", "malformed JSON"),  # a byte order mark
        (b'{"a": NaN}', "malformed JSON"),
        (b'{"role": "viewer", "role": "owner"}', "the member name 'role' is given more than once"),
        (b'[{"x": {"a": 1, "a": 2}}]', "the member name 'a' is given more than once"),
        (b'"a\\u0000b"', "a string holds a NUL character"),
        (b'{"a\\u0000": 1}', "a string holds a NUL character"),
        (b'["\\ud800"]', "a string holds an unpaired surrogate (RFC 7493)"),
        (b'{"\\udfff": 1}', "a string holds an unpaired surrogate (RFC 7493)"),
        (_nested(MAX_DEPTH + 1), f"nests deeper than {MAX_DEPTH} levels"),
        (b'{"a": ' + _nested(256) + b"}", f"nests deeper than {MAX_DEPTH} levels"),
        (_nested(100_000), f"nests deeper than {MAX_DEPTH} levels"),
    ],
)
def test_refused(data: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        decode_json_body(data)
    assert [(e.field, e.message) for e in refused.value.errors] == [("body", message)]


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", 'application/json; charset="UTF8"'],
)
def test_utf8_charsets(content_type: str) -> None:
    check_json_charset(content_type)


@pytest.mark.parametrize("charset", ["latin-1", "iso-8859-1", "utf-16", "us-ascii"])
def test_other_charsets(charset: str) -> None:
    with pytest.raises(UnsupportedMediaType):
        check_json_charset(f"application/json; charset={charset}")
