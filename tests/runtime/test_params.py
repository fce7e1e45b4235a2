"""Parameter parsing: styles, coercion, defaults, unknown parameters, every error at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from werkzeug.datastructures import MultiDict

from server.runtime.errors import BadRequest
from server.runtime.params import ParameterParser, RawParameters
from server.runtime.schemas import SchemaBundle

BUNDLE = SchemaBundle(
    {
        "schemas": {
            "Limit": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
            "Order": {"type": "string", "enum": ["asc", "desc"], "default": "desc"},
        }
    }
)


@dataclass(frozen=True)
class Param:
    name: str
    location: str
    schema: dict[str, Any]
    required: bool = False
    style: str = "form"
    explode: bool = True

    @property
    def python_name(self) -> str:
        return self.name.replace("-", "_")


def parse(params: list[Param], query: Any = (), **raw: Any) -> Any:
    parser = ParameterParser(params, BUNDLE)
    return parser.parse(
        RawParameters(
            path=raw.get("path", {}),
            query=MultiDict(query),
            headers=raw.get("headers", {}),
            cookies=raw.get("cookies", {}),
        )
    )


def test_scalars_are_coerced_and_defaults_filled() -> None:
    params = [
        Param("limit", "query", {"$ref": "#/components/schemas/Limit"}),
        Param("order", "query", {"$ref": "#/components/schemas/Order"}),
        Param("include_total", "query", {"type": "boolean", "default": False}),
        Param("ratio", "query", {"type": "number"}),
    ]
    parsed = parse(params, [("limit", "7"), ("include_total", "true"), ("ratio", "0.5")])
    assert parsed.query == {"limit": 7, "order": "desc", "include_total": True, "ratio": 0.5}


def test_every_problem_is_reported_at_once() -> None:
    params = [
        Param("limit", "query", {"$ref": "#/components/schemas/Limit"}),
        Param("order", "query", {"$ref": "#/components/schemas/Order"}),
        Param("id", "path", {"type": "string", "pattern": "^ws_[0-9A-Za-z]{24}$"}, required=True),
    ]
    with pytest.raises(BadRequest) as caught:
        parse(params, [("limit", "0"), ("order", "sideways"), ("bogus", "1")], path={"id": "nope"})
    fields = [e.field for e in caught.value.errors]
    assert fields == ["query.bogus", "query.limit", "query.order", "path.id"]
    assert caught.value.code == "validation_failed"


def test_unknown_parameter_alone_has_its_own_code() -> None:
    with pytest.raises(BadRequest) as caught:
        parse([], [("colour", "red")])
    assert caught.value.code == "unknown_parameter"


@pytest.mark.parametrize("raw", ["1.5", "abc", "", " 1", "1e3"])
def test_integers_reject_non_integers(raw: str) -> None:
    with pytest.raises(BadRequest):
        parse([Param("n", "query", {"type": "integer"})], [("n", raw)])


def test_booleans_accept_only_true_and_false() -> None:
    with pytest.raises(BadRequest):
        parse([Param("b", "query", {"type": "boolean"})], [("b", "yes")])


def test_repeated_scalar_is_rejected() -> None:
    with pytest.raises(BadRequest):
        parse([Param("n", "query", {"type": "integer"})], [("n", "1"), ("n", "2")])


def test_arrays_by_style() -> None:
    exploded = Param("tag", "query", {"type": "array", "items": {"type": "integer"}})
    joined = Param("ids", "query", {"type": "array", "items": {"type": "string"}}, explode=False)
    piped = Param(
        "p",
        "query",
        {"type": "array", "items": {"type": "string"}},
        style="pipeDelimited",
        explode=False,
    )
    header = Param(
        "X-Ids",
        "header",
        {"type": "array", "items": {"type": "integer"}},
        style="simple",
        explode=False,
    )
    parsed = parse(
        [exploded, joined, piped, header],
        [("tag", "1"), ("tag", "2"), ("ids", "a,b"), ("p", "x|y")],
        headers={"X-Ids": "3,4"},
    )
    assert parsed.query == {"tag": [1, 2], "ids": ["a", "b"], "p": ["x", "y"]}
    assert parsed.headers == {"X-Ids": [3, 4]}


def test_deep_object() -> None:
    param = Param(
        "filter",
        "query",
        {"type": "object", "properties": {"age": {"type": "integer"}, "name": {"type": "string"}}},
        style="deepObject",
    )
    parsed = parse([param], [("filter[age]", "3"), ("filter[name]", "x")])
    assert parsed.query == {"filter": {"age": 3, "name": "x"}}


def test_required_header_and_cookie() -> None:
    params = [
        Param("X-Trace", "header", {"type": "string"}, required=True, style="simple"),
        Param("theme", "cookie", {"type": "string", "enum": ["dark"]}, required=True),
    ]
    with pytest.raises(BadRequest) as caught:
        parse(params, cookies={"theme": "light"})
    assert [e.field for e in caught.value.errors] == ["header.X-Trace", "cookie.theme"]


def test_nullable_union_prefers_the_typed_reading() -> None:
    parsed = parse([Param("n", "query", {"type": ["integer", "null"]})], [("n", "5")])
    assert parsed.query == {"n": 5}


@pytest.mark.parametrize(
    ("location", "raw"),
    [
        ("path", {"path": {"name": "a\x00b"}}),
        ("header", {"headers": {"name": "\x00"}}),
        ("cookie", {"cookies": {"name": "a\x00"}}),
    ],
)
def test_a_nul_in_a_string_parameter_is_refused(location: str, raw: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as refused:
        parse([Param("name", location, {"type": "string"})], **raw)
    assert refused.value.code == "validation_failed"
    assert [(e.field, e.message) for e in refused.value.errors] == [
        (f"{location}.name", "must not contain a NUL character")
    ]


@pytest.mark.parametrize(
    "query",
    [[("q", "a\x00")], [("q", "ok"), ("q", "\x00")], [("tags", "a,\x00")], [("\x00", "1")]],
)
def test_a_nul_anywhere_in_the_query_is_refused(query: list[tuple[str, str]]) -> None:
    params = [
        Param("q", "query", {"type": "array", "items": {"type": "string"}}),
        Param("tags", "query", {"type": "array", "items": {"type": "string"}}, explode=False),
    ]
    with pytest.raises(BadRequest) as refused:
        parse(params, query)
    assert any(e.message == "must not contain a NUL character" for e in refused.value.errors)
