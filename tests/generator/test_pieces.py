"""Reading YAML piece by piece gives exactly what reading the whole document gives, or falls back
to reading it whole."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from generator import pieces
from generator.diagnostics import Located
from generator.loader import _parse_whole, loads

SPEC = """\
# leading comment
openapi: 3.1.0
info:
  title: t  # trailing comment
  version: "1"
  description: |
    Block scalar
      indented more

    after a blank line
servers:
- url: https://example.com/v1
paths:
  # a comment above the first path item
  /pets:
    get:
      parameters:
      - name: limit
        in: query
      responses:
        '200': {description: ok}
# a comment at column 0 between path items
  /pets/{id}:
    get:
      responses:
        "200":
          description: >
            folded
            text
components:
  schemas:
    Pet: &pet
      type: object
    Alias: *pet
"""


def _fast(text: str, memo: dict[str, Any] | None = None) -> tuple[Any, bool]:
    document = loads(text.encode(), Path("spec.yaml"), memo)
    return document.data, document.digests is not None


def test_a_block_document_is_read_piece_by_piece_to_the_same_value() -> None:
    data, by_pieces = _fast(SPEC)
    assert by_pieces
    assert data == _parse_whole(SPEC)[0]
    assert list(data) == ["openapi", "info", "servers", "paths", "components"]
    assert list(data["paths"]) == ["/pets", "/pets/{id}"]


def test_the_memo_holds_this_documents_pieces_and_is_reused() -> None:
    memo: dict[str, Any] = {}
    first, _ = _fast(SPEC, memo)
    digests = set(memo)
    edited = SPEC.replace("name: limit", "name: size")
    second, by_pieces = _fast(edited, memo)
    assert by_pieces and second == _parse_whole(edited)[0]
    assert len(set(memo) - digests) == 1  # only the edited path item was parsed again
    assert second["info"] is first["info"]  # the others were taken from the memo


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",  # an anchor used in another piece
        "paths:\n  /a: &x {get: {}}\n  /b: *x\n",
        "a: 1\n---\nb: 2\n",  # several documents
        "{a: 1}\n",  # flow style at the top
        "%YAML 1.1\n---\na: 1\n",
        'a: "spans\nb: boundary"\n',
        "- a\n- b\n",  # not a mapping
        "paths:\n    /a: {}\n  /b: {}\n",  # a path item less indented than the first
    ],
)
def test_documents_that_do_not_split_cleanly_are_read_whole(text: str) -> None:
    try:
        expected = _parse_whole(text)[0]
    except Exception:
        expected = None
    if expected is None:
        with pytest.raises(Exception):  # noqa: B017 - whatever the whole read raises
            loads(text.encode(), Path("spec.yaml"))
        return
    data, by_pieces = _fast(text)
    assert data == expected
    assert not by_pieces


def test_duplicate_keys_across_pieces_are_reported_by_the_whole_read() -> None:
    document = loads(b"paths:\n  /a: {}\n  /a: {}\nb: 1\nb: 2\n", Path("spec.yaml"))
    assert document.digests is None
    assert Located(3, 3, "error", "duplicate key '/a' (first on line 2)") in document.problems
    assert Located(5, 1, "error", "duplicate key 'b' (first on line 4)") in document.problems


def test_json_is_read_by_the_json_parser_and_positions_come_on_demand() -> None:
    document = loads(b'{\n  "openapi": "3.1.0",\n  "paths": {}\n}\n', Path("spec.json"))
    assert document.data == {"openapi": "3.1.0", "paths": {}}
    assert document.source_map.locate("/paths") == (3, 3)


def test_json_with_duplicate_keys_goes_the_slow_way_and_says_so() -> None:
    document = loads(b'{"a": 1, "a": 2}', Path("spec.json"))
    assert document.problems == (Located(1, 10, "error", "duplicate key 'a' (first on line 1)"),)


def test_crlf_line_endings() -> None:
    text = SPEC.replace("\n", "\r\n")
    data, by_pieces = _fast(text)
    assert by_pieces and data == _parse_whole(text)[0]


_KEYS = st.text(alphabet="abcxyz_-/{}.0123456789", min_size=1, max_size=8)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10),
    st.text(alphabet="ab #:-'\"\n", max_size=12),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, min_size=1, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(
    top=st.dictionaries(_KEYS.filter(lambda k: k != "paths"), _VALUES, max_size=4),
    paths=st.dictionaries(_KEYS.map(lambda k: "/" + k), _VALUES, max_size=4),
    flow=st.booleans(),
    indent=st.sampled_from([2, 4]),
)
def test_any_dumped_document_reads_the_same_either_way(
    top: dict[str, Any], paths: dict[str, Any], flow: bool, indent: int
) -> None:
    document = {**top, "paths": paths}
    text = yaml.safe_dump(document, default_flow_style=flow or None, indent=indent, width=30)
    whole = _parse_whole(text)[0]
    data, _ = _fast(text)
    assert data == whole


def test_split_finds_one_piece_per_member_and_path_item() -> None:
    layout = pieces.split(SPEC)
    assert layout is not None
    assert layout.paths_at == 3
    assert [p.in_paths for p in layout.pieces] == [False, False, False, True, True, False]


@pytest.mark.parametrize("text", [SPEC, SPEC.replace("\n", "\r\n")])
def test_positions_read_piece_by_piece_are_those_of_the_whole_document(text: str) -> None:
    document = loads(text.encode(), Path("spec.yaml"))
    assert document.digests is not None  # read in pieces: positions come piece by piece
    whole = _parse_whole(text)[1]
    for pointer in [*whole.positions, "/nowhere", "/paths/~1nowhere/get"]:
        assert document.source_map.locate(pointer) == whole.locate(pointer), pointer
