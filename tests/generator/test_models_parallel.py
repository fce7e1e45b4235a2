"""Models of a large schema set come from two partitions, merged: the same classes as one run,
the same bytes in a forked worker as in-process, and one run whenever the partitions disagree.

The threshold is lowered here so that a small synthetic spec (`bench/generate/specs.py`) is
"large" and every test stays fast.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from generator_support import REPO

from generator import models
from generator.cache import Cache
from generator.models import Models, ModelsJob, Worker, generate_models, partitions
from generator.prepare import prepare
from generator.resolve import Resolver

OPERATIONS = 50  # 46 effective schemas
LOW_THRESHOLD = 2
PREFIX = "#/components/schemas/"


def _synthetic(operations: int) -> dict[str, Any]:
    """`bench/generate/specs.py`'s document (the benchmarks are not a package on the test path)."""
    path = REPO / "bench" / "generate" / "specs.py"
    spec = importlib.util.spec_from_file_location("gantry_bench_specs", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    document: dict[str, Any] = module.build(operations)
    return document


def _schemas(operations: int = OPERATIONS) -> dict[str, Any]:
    """The effective schemas of the synthetic spec."""
    document = _synthetic(operations)
    return prepare(document, Resolver(document)).schemas


@pytest.fixture
def low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models, "PARTITION_THRESHOLD", LOW_THRESHOLD)


@pytest.fixture(scope="module")
def one_run() -> Models:
    """The models of the synthetic spec from one run over every schema (the real threshold)."""
    schemas = _schemas()
    assert len(schemas) < models.PARTITION_THRESHOLD
    return generate_models(schemas, "3.1.0", Cache(None))


def _definitions(source: str) -> dict[str, str]:
    """Top-level name → its statement, normalised."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef):
            found[node.name] = ast.unparse(node)
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            found[node.targets[0].id] = ast.unparse(node)
    return found


def _import(source: str, folder: Path, name: str) -> Any:
    path = folder / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # pydantic resolves forward references through it
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def _referenced(schema: Any) -> set[str]:
    """The component schemas a schema names, by a test-side reading of its `$ref`s."""
    if isinstance(schema, list):
        return set().union(*map(_referenced, schema)) if schema else set()
    if not isinstance(schema, dict):
        return set()
    ref = schema.get("$ref")
    named = {ref.removeprefix(PREFIX)} if isinstance(ref, str) else set()
    return named.union(*map(_referenced, schema.values()))


def test_partitions_are_closed_balanced_and_cover_every_schema(low_threshold: None) -> None:
    schemas = _schemas()
    parts = partitions(schemas)
    assert parts is not None and len(parts) == 2
    assert set().union(*parts) == set(schemas)
    for part in parts:
        assert list(part) == [name for name in schemas if name in part]  # the input's order
        for schema in part.values():
            assert _referenced(schema) <= set(part)
    sizes = [len(json.dumps(part)) for part in parts]
    assert max(sizes) < 0.6 * len(json.dumps(schemas))


def test_escaped_references_and_discriminator_mappings_are_followed(low_threshold: None) -> None:
    properties = {f"p{i}": {"type": "string"} for i in range(8)}
    filler = {"type": "object", "properties": properties}
    schemas = {
        "a/b": filler,
        "c~d": filler,
        "e f": filler,
        "Uses": {
            "type": "object",
            "properties": {
                "one": {"$ref": PREFIX + "a~1b"},
                "two": {"$ref": PREFIX + "c~0d"},
                "three": {"$ref": PREFIX + "e%20f/properties/p0"},
            },
        },
        "Cat": {
            "type": "object",
            "properties": {"kind": {"type": "string"}, **properties},
        },
        "Pet": {
            "oneOf": [{"$ref": PREFIX + "Cat"}],
            "discriminator": {"propertyName": "kind", "mapping": {"cat": PREFIX + "Cat"}},
        },
        "Other": filler,
        "More": filler,
    }
    parts = partitions(schemas)
    assert parts is not None
    for part in parts:
        if "Uses" in part:
            assert {"a/b", "c~d", "e f"} <= set(part)
        if "Cat" in part or "Pet" in part:  # a mapped schema's tag field depends on the mapping
            assert {"Cat", "Pet"} <= set(part)


def test_a_reference_outside_the_component_schemas_means_one_run(low_threshold: None) -> None:
    schemas = _schemas()
    schemas["Odd"] = {"$ref": "#/components/parameters/Limit"}
    assert partitions(schemas) is None


def test_small_schema_sets_are_not_partitioned() -> None:
    assert partitions(_schemas()) is None  # the real threshold: the goldens keep their bytes


def test_partitioned_models_define_what_one_run_defines(
    low_threshold: None, one_run: Models, tmp_path: Path
) -> None:
    merged = generate_models(_schemas(), "3.1.0", Cache(None))
    assert merged.source != one_run.source  # really partitioned (the order differs)
    assert merged.class_names == one_run.class_names
    assert merged.warnings == one_run.warnings
    assert _definitions(merged.source) == _definitions(one_run.source)
    module = _import(merged.source, tmp_path, "gantry_partitioned_models")
    page = module.Resource0001Page.model_validate(
        {
            "items": [
                {
                    "id": "r1",
                    "name": "one",
                    "status": "active",
                    "created_at": "2024-01-01T00:00:00Z",
                    "parent": {
                        "id": "r0",
                        "name": "zero",
                        "status": "archived",
                        "created_at": "2024-01-01T00:00:00Z",
                    },
                }
            ],
            "next_cursor": None,
        }
    )
    assert page.items[0].parent.status == module.Resource0000Status.archived


def test_partitioned_models_are_the_same_bytes_every_time_and_in_a_worker(
    low_threshold: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    schemas = _schemas()
    first = generate_models(schemas, "3.1.0", Cache(None))
    assert generate_models(schemas, "3.1.0", Cache(None)) == first
    monkeypatch.setenv("GANTRY_GENERATE_PARALLEL", "1")
    worker = Worker.start()
    if worker is None:
        pytest.skip("no fork here")
    try:
        job = ModelsJob(schemas, "3.1.0", Cache(None), worker=worker)
        assert job.worker is worker  # the partitions ran side by side, in the worker and its fork
        assert job.result() == first
    finally:
        worker.stop()


def test_partitions_do_not_depend_on_the_hash_seed() -> None:
    script = (
        "import json, sys\n"
        "from generator import models\n"
        f"models.PARTITION_THRESHOLD = {LOW_THRESHOLD}\n"
        "print(json.dumps([list(part) for part in models.partitions(json.load(sys.stdin))]))\n"
    )
    schemas = json.dumps(_schemas())
    answers = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script],
            input=schemas,
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        answers.add(result.stdout)
    assert len(answers) == 1


def test_a_name_the_partitions_define_differently_falls_back_to_one_run(
    low_threshold: None,
) -> None:
    # `Foo.bar` is modelled as `FooBar`, the name of another schema: one run renames one of them,
    # each partition alone does not, so the partitions cannot be merged.
    schemas = {
        "Foo": {
            "type": "object",
            "properties": {"bar": {"type": "object", "properties": {"x": {"type": "integer"}}}},
        },
        "FooBar": {
            "type": "object",
            "properties": {"y": {"type": "string"}, "z": {"type": "string"}},
        },
    }
    assert partitions(schemas) == [{"Foo": schemas["Foo"]}, {"FooBar": schemas["FooBar"]}]
    fallen_back = generate_models(schemas, "3.1.0", Cache(None))
    models.PARTITION_THRESHOLD = len(schemas) + 1  # undone by the fixture
    assert fallen_back == generate_models(schemas, "3.1.0", Cache(None))
    assert fallen_back.class_names == {"Foo": "Foo", "FooBar": "FooBar1"}
