"""The corpus: every spec generates its golden tree, and every tree imports, routes,
type-checks under `mypy --strict` and passes `ruff check`; the bytes do not depend on the
hash seed."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from flask import Flask
from generator_support import GOLDEN, REPO, SPECS, Generate, corpus_specs, relative

CORPUS = corpus_specs()
FAMILIES = {
    "bodies_media",
    "composition",
    "multi_file",
    "multipart_encoding",
    "nullable_enums",
    "odd_names",
    "params_styles",
    "readwrite_recursion",
    "security_forms",
    "servers_webhooks",
    "types_31",
}


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_the_corpus_covers_every_family_in_both_versions() -> None:
    assert {spec.stem for spec in CORPUS} == FAMILIES
    versions = {spec.read_text().split("openapi", 1)[1][:8] for spec in CORPUS}
    assert any("3.0" in v for v in versions) and any("3.1" in v for v in versions)
    assert any(spec.suffix == ".json" for spec in CORPUS)


@pytest.mark.parametrize("spec", CORPUS, ids=lambda p: p.stem)
def test_spec_generates_its_golden_tree(spec: Path, generate: Generate, tmp_path: Path) -> None:
    out = tmp_path / spec.stem
    result = generate(spec, out)
    assert result.status == 0, result.stderr
    assert ": error: " not in result.stderr
    golden = _tree(GOLDEN / spec.stem)
    produced = _tree(out)
    assert sorted(produced) == sorted(golden)
    for name in sorted(golden):
        assert produced[name] == golden[name], (
            f"{spec.stem}/{name} differs from the golden record; if intended, run "
            "`python tests/generator/regen_golden.py` and review the diff"
        )


@pytest.fixture
def imported(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, ModuleType]]:
    """A golden tree imported under a package name of its own."""
    name = f"corpus_{request.param}"
    (tmp_path / name).symlink_to(GOLDEN / request.param, target_is_directory=True)
    sys.path.insert(0, str(tmp_path))
    try:
        yield {
            part: importlib.import_module(f"{name}.{part}")
            for part in ("models", "operations", "routes")
        }
    finally:
        sys.path.remove(str(tmp_path))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]


@pytest.mark.parametrize("imported", [s.stem for s in CORPUS], indirect=True)
def test_golden_tree_imports_and_registers_its_routes(imported: dict[str, ModuleType]) -> None:
    operations = imported["operations"]
    assert operations.OPERATIONS
    assert set(operations.OPERATIONS_BY_ID) == {op.operation_id for op in operations.OPERATIONS}
    for op in operations.OPERATIONS:
        for body in op.request_body.content if op.request_body else ():
            if body.model is not None:
                assert isinstance(getattr(imported["models"], body.model), type)
    app = Flask("corpus")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    imported["routes"].register_routes(app, lambda op: lambda **_: op.operation_id)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} - {"static"}
    assert endpoints == set(operations.OPERATIONS_BY_ID)


def test_every_golden_tree_passes_mypy_strict(in_repo: Path) -> None:
    from mypy import api

    trees = [str(GOLDEN / spec.stem) for spec in [SPECS / "petstore_mini.yaml", *CORPUS]]
    # One run over every tree, in place, so mypy's incremental cache keeps reruns quick.
    stdout, stderr, status = api.run(["--strict", "--config-file", "", *trees])
    assert status == 0, stdout + stderr


def test_every_golden_tree_passes_ruff_check() -> None:
    ruff = Path(sys.executable).with_name("ruff")
    trees = [str(GOLDEN / spec.stem) for spec in CORPUS]
    result = subprocess.run(
        [str(ruff), "check", "--isolated", "--no-cache", *trees],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_corpus_bytes_do_not_depend_on_the_hash_seed(tmp_path: Path) -> None:
    script = (
        "import io, sys\n"
        "from generator.command import run\n"
        "for spec, out in zip(sys.argv[1::2], sys.argv[2::2]):\n"
        "    assert run(spec, out, stdout=io.StringIO(), stderr=io.StringIO()) == 0, spec\n"
    )
    arguments = [a for spec in CORPUS for a in (relative(spec), str(tmp_path / spec.stem))]
    env = {**os.environ, "PYTHONHASHSEED": "12345", "GANTRY_CACHE_DIR": str(tmp_path / "c")}
    subprocess.run(
        [sys.executable, "-c", script, *arguments], cwd=REPO, env=env, check=True, timeout=300
    )
    for spec in CORPUS:
        assert _tree(tmp_path / spec.stem) == _tree(GOLDEN / spec.stem), spec.stem
