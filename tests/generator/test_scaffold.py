"""`gantry scaffold` writes 501 stubs for missing handlers and never touches existing ones."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest
from generator_support import SPECS, write_spec

from generator.scaffold import bound_names, run
from server.runtime.errors import NotImplementedYet

PETSTORE = SPECS / "petstore_mini.yaml"
EXISTING = '''\
"""Pets, by hand."""

from __future__ import annotations

import json


def list_pets(request):  # hand-written: must survive byte for byte
    return json.dumps([])


create_pet = list_pets  # bound another way: must not be redefined
'''


def _scaffold(spec: Path, handlers: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = run(str(spec), str(handlers), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scaffolded_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_stubs_are_written_and_existing_handlers_kept(in_repo: Path, tmp_path: Path) -> None:
    handlers = tmp_path / "handlers"
    handlers.mkdir()
    (handlers / "pets.py").write_text(EXISTING)

    status, stdout, _ = _scaffold(PETSTORE, handlers)

    assert status == 0
    assert sorted(p.name for p in handlers.iterdir()) == ["pets.py", "photos.py", "system.py"]
    pets = (handlers / "pets.py").read_text()
    body = EXISTING.split("import json\n", 1)[1]
    assert body in pets, "existing code is kept byte for byte"
    assert bound_names(pets) >= {"list_pets", "create_pet", "delete_pet", "show_pet_by_id"}
    assert pets.count("def create_pet") == 0 and pets.count("def list_pets(") == 1
    assert "pets.py: 2 stub(s): delete_pet, show_pet_by_id" in stdout

    module = _load(handlers / "photos.py")
    with pytest.raises(NotImplementedYet) as raised:
        module.get_pet_photo(object())
    assert raised.value.status == 501
    assert "getPetPhoto" in raised.value.detail


def test_scaffolding_twice_changes_nothing(in_repo: Path, tmp_path: Path) -> None:
    handlers = tmp_path / "handlers"
    assert _scaffold(PETSTORE, handlers)[0] == 0
    before = {p.name: p.read_bytes() for p in handlers.iterdir()}
    status, stdout, _ = _scaffold(PETSTORE, handlers)
    assert status == 0 and "every operation" in stdout
    assert {p.name: p.read_bytes() for p in handlers.iterdir()} == before


def test_stubs_pass_ruff_and_mypy(in_repo: Path, tmp_path: Path) -> None:
    import subprocess

    from mypy import api

    handlers = tmp_path / "handlers"
    handlers.mkdir()
    (handlers / "pets.py").write_text(
        '"""Pets."""\n\nfrom __future__ import annotations\n\nimport os\n\n\n'
        "def list_pets(request: object) -> object:\n    return os.sep\n"
    )
    assert _scaffold(PETSTORE, handlers)[0] == 0
    ruff = Path(sys.executable).with_name("ruff")
    for command in (["check"], ["format", "--check"]):
        checked = subprocess.run(
            [str(ruff), *command, "--no-cache", str(handlers)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    stdout, stderr, status = api.run(["--strict", *map(str, sorted(handlers.glob("*.py")))])
    assert status == 0, stdout + stderr


def test_a_broken_spec_writes_nothing(in_repo: Path, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, "openapi: 3.1.0\ninfo: {title: t, version: '1'}\npaths: {a: [}\n")
    status, _, stderr = _scaffold(spec, tmp_path / "handlers")
    assert status == 1 and "nothing written" in stderr
    assert not (tmp_path / "handlers").exists()
