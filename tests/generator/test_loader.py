"""The loader keeps a position for every node and reports YAML problems where they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.diagnostics import GenerationFailed, Located
from generator.loader import loads

DOC = b"""\
openapi: 3.1.0
paths:
  /pets/{id}:
    get:
      parameters:
        - name: id
          in: path
      responses:
        200: {description: ok}
"""


def test_values_and_positions() -> None:
    document = loads(DOC, Path("spec.yaml"))
    assert document.data["paths"]["/pets/{id}"]["get"]["parameters"][0] == {
        "name": "id",
        "in": "path",
    }
    source_map = document.source_map
    assert source_map.locate("/paths/~1pets~1{id}/get") == (4, 5)
    assert source_map.locate("/paths/~1pets~1{id}/get/parameters/0") == (6, 11)
    assert source_map.locate("/paths/~1pets~1{id}/get/parameters/0/in") == (7, 11)


def test_integer_keys_stay_strings_as_in_json() -> None:
    document = loads(DOC, Path("spec.yaml"))
    assert list(document.data["paths"]["/pets/{id}"]["get"]["responses"]) == ["200"]


def test_unknown_pointers_fall_back_to_the_nearest_ancestor() -> None:
    source_map = loads(DOC, Path("spec.yaml")).source_map
    assert source_map.locate("/paths/~1pets~1{id}/get/requestBody/content") == (4, 5)
    assert source_map.locate("/nowhere") == (1, 1)


def test_duplicate_keys_are_reported_at_the_second_one() -> None:
    document = loads(b"a: 1\nb: 2\na: 3\n", Path("spec.yaml"))
    assert document.data == {"a": 3, "b": 2}
    assert document.problems == (Located(3, 1, "error", "duplicate key 'a' (first on line 1)"),)


def test_syntax_error_is_located() -> None:
    with pytest.raises(GenerationFailed) as failure:
        loads(b"a: [1, 2\nb: 3\n", Path("spec.yaml"))
    (problem,) = failure.value.diagnostics
    # at the `[` that is never closed, not where libyaml noticed (line 2)
    assert (problem.line, problem.column, problem.severity) == (1, 4, "error")
    assert "this flow sequence is not closed" in problem.message
    assert "by 2:" in problem.message


def test_other_syntax_errors_are_located_where_libyaml_sees_them() -> None:
    with pytest.raises(GenerationFailed) as failure:
        loads(b"a:\n  b: 1\n c: 2\n", Path("spec.yaml"))
    (problem,) = failure.value.diagnostics
    assert (problem.line, problem.column) == (3, 2)


def test_anchors_and_merge_keys_are_expanded() -> None:
    document = loads(b"base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n", Path("spec.yaml"))
    assert document.data["other"] == {"x": 1, "y": 2}


def test_a_document_that_is_not_a_mapping_fails() -> None:
    with pytest.raises(GenerationFailed):
        loads(b"- 1\n- 2\n", Path("spec.yaml"))
