"""A run that reuses the last run's work (the memo) gives exactly what a run from nothing gives:
the same files after any edit, the same problems when an edit breaks the spec."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from generator_support import REPO, Result, call_generate

from bench.generate.specs import build, to_yaml

Edit = Callable[[dict[str, Any]], None]


def _tree(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def _run(spec: Path, out: Path, cache: Path | None, monkeypatch: pytest.MonkeyPatch) -> Result:
    monkeypatch.setenv("GANTRY_CACHE_DIR", str(cache) if cache is not None else "")
    return call_generate(spec, out)


def _add_query_parameter(document: dict[str, Any]) -> None:
    document["paths"]["/resource0000s"]["get"]["parameters"].append(
        {"name": "probe", "in": "query", "schema": {"type": "boolean"}}
    )


def _change_a_schema(document: dict[str, Any]) -> None:
    document["components"]["schemas"]["Resource0001"]["properties"]["extra"] = {"type": "string"}


def _remove_a_path(document: dict[str, Any]) -> None:
    del document["paths"]["/resource0001s/{resource0001_id}"]


def _add_a_path(document: dict[str, Any]) -> None:
    document["paths"]["/health"] = {
        "get": {
            "operationId": "health",
            "security": [],
            "responses": {"200": {"description": "ok"}},
        }
    }


def _duplicate_an_operation_id(document: dict[str, Any]) -> None:
    document["paths"]["/resource0001s"]["get"]["operationId"] = "listResource0000s"


def _break_a_reference(document: dict[str, Any]) -> None:
    responses = document["paths"]["/resource0000s"]["get"]["responses"]
    responses["200"]["content"]["application/json"]["schema"] = {
        "$ref": "#/components/schemas/Nope"
    }


def _reference_another_path_item(document: dict[str, Any]) -> None:
    # A response taken from another path item: a unit's results then depend on another's.
    source = "#/paths/~1resource0000s/get/responses/200"
    document["paths"]["/resource0001s"]["get"]["responses"]["200"] = {"$ref": source}


def _use_a_shared_response_under_another_status(document: dict[str, Any]) -> None:
    responses = document["paths"]["/resource0000s"]["get"]["responses"]
    responses["409"] = {"$ref": "#/components/responses/NotFound"}


def _write_out_a_shared_parameter_everywhere(document: dict[str, Any]) -> None:
    # Neither the components nor any body changes: only which shared records the table names.
    limit = document["components"]["parameters"]["Limit"]
    for path_item in document["paths"].values():
        for operation in path_item.values():
            parameters = operation.get("parameters", []) if isinstance(operation, dict) else []
            for index, parameter in enumerate(parameters):
                if parameter == {"$ref": "#/components/parameters/Limit"}:
                    parameters[index] = copy.deepcopy(limit)


def _change_a_shared_response(document: dict[str, Any]) -> None:
    document["components"]["responses"]["NotFound"]["headers"] = {
        "X-Trace": {"schema": {"type": "string"}}
    }


def _rename_the_title(document: dict[str, Any]) -> None:
    document["info"]["title"] = "Renamed"


EDITS = [
    _add_query_parameter,
    _change_a_schema,
    _remove_a_path,
    _add_a_path,
    _duplicate_an_operation_id,
    _break_a_reference,
    _reference_another_path_item,
    _use_a_shared_response_under_another_status,
    _write_out_a_shared_parameter_everywhere,
    _change_a_shared_response,
    _rename_the_title,
]


@pytest.mark.parametrize("edit", EDITS, ids=lambda edit: edit.__name__.strip("_"))
def test_an_edit_regenerates_as_from_nothing(
    edit: Edit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    original = build(18)
    spec = tmp_path / "openapi.yaml"
    spec.write_text(to_yaml(original), encoding="utf-8")
    cache = tmp_path / "cache"
    assert _run(spec, tmp_path / "warm", cache, monkeypatch).status == 0

    edited = copy.deepcopy(original)
    edit(edited)
    spec.write_text(to_yaml(edited), encoding="utf-8")
    incremental = _run(spec, tmp_path / "warm", cache, monkeypatch)
    fresh = _run(spec, tmp_path / "cold", None, monkeypatch)

    assert (incremental.status, incremental.stderr) == (fresh.status, fresh.stderr)
    if fresh.status == 0:
        assert _tree(tmp_path / "warm") == _tree(tmp_path / "cold")

    # and back again: the memo of a broken or edited spec still serves the original
    spec.write_text(to_yaml(original), encoding="utf-8")
    assert _run(spec, tmp_path / "warm", cache, monkeypatch).status == 0
    assert _run(spec, tmp_path / "cold", None, monkeypatch).status == 0
    assert _tree(tmp_path / "warm") == _tree(tmp_path / "cold")


def test_a_spec_seen_for_the_first_time_starts_from_the_newest_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    document = build(12)
    first, second = tmp_path / "first.yaml", tmp_path / "second.yaml"
    first.write_text(to_yaml(document), encoding="utf-8")
    _add_query_parameter(document)
    second.write_text(to_yaml(document), encoding="utf-8")
    cache = tmp_path / "cache"
    assert _run(first, tmp_path / "a", cache, monkeypatch).status == 0
    assert _run(second, tmp_path / "b", cache, monkeypatch).status == 0
    assert _run(second, tmp_path / "c", None, monkeypatch).status == 0
    assert _tree(tmp_path / "b") == _tree(tmp_path / "c")


def test_the_repository_spec_regenerates_identically_from_a_warm_memo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    cache = tmp_path / "cache"
    spec = Path("spec/openapi.yaml")
    assert _run(spec, tmp_path / "a", cache, monkeypatch).status == 0
    for entry in (cache / "output").iterdir():  # not the whole output: only the memo may help
        entry.unlink()
    assert _run(spec, tmp_path / "b", cache, monkeypatch).status == 0
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b") == _tree(REPO / "generated")


def test_an_edit_to_a_referenced_file_regenerates_as_from_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = REPO / "tests" / "generator" / "corpus"
    spec = tmp_path / "multi_file.yaml"
    spec.write_bytes((corpus / "multi_file.yaml").read_bytes())
    for source in sorted((corpus / "multi_file").rglob("*")):
        if source.is_file():
            target = tmp_path / source.relative_to(corpus)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    cache = tmp_path / "cache"
    assert _run(spec, tmp_path / "warm", cache, monkeypatch).status == 0
    category = tmp_path / "multi_file" / "schemas" / "category.yaml"
    category.write_text(category.read_text() + "  label: {type: string, maxLength: 9}\n")
    warm = _run(spec, tmp_path / "warm", cache, monkeypatch)
    cold = _run(spec, tmp_path / "cold", None, monkeypatch)
    assert warm.status == cold.status == 0, warm.stderr
    assert _tree(tmp_path / "warm") == _tree(tmp_path / "cold")
    assert b"label" in (tmp_path / "warm" / "schemas.json").read_bytes()
    path_item = tmp_path / "multi_file" / "paths" / "pet.yaml"
    path_item.write_text(path_item.read_text().replace("maximum: 1000000", "maximum: 99"))
    warm = _run(spec, tmp_path / "warm", cache, monkeypatch)
    assert warm.status == 0, warm.stderr
    assert _tree(tmp_path / "warm") == _tree(_run_cold(spec, tmp_path / "cold2", monkeypatch))


def _run_cold(spec: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    assert _run(spec, out, None, monkeypatch).status == 0
    return out
