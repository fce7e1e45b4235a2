"""The cache only saves time: same bytes, same warnings, same failures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from generator_support import REPO, SPECS, Generate, relative, write_spec

from generator import cache as cache_module
from generator.cache import KEEP_PER_KIND, Cache

PETSTORE = SPECS / "petstore_mini.yaml"
WARNS = """\
openapi: 3.1.0
info: {title: t, version: "1"}
paths:
  /pets:
    get:
      parameters: [{name: X_Trace, in: header, schema: {type: string}}]
      responses:
        "200": {description: ok}
"""


def test_an_unchanged_spec_is_answered_without_the_heavy_stages(tmp_path: Path) -> None:
    env = {**os.environ, "GANTRY_CACHE_DIR": str(tmp_path / "cache")}
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from generator.command import generate\n"
        f"generate(Path({relative(PETSTORE)!r}))\n"
        "print(sorted(m for m in ('yaml', 'jinja2', 'generator.pipeline') if m in sys.modules))\n"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["['generator.pipeline', 'jinja2', 'yaml']", "[]"]


def test_cached_warnings_are_reported_and_fail_strict(generate: Generate, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, WARNS)
    cold = generate(spec, tmp_path / "a")
    warm = generate(spec, tmp_path / "b")
    assert cold.status == warm.status == 0
    assert cold.stderr == warm.stderr != ""
    assert generate(spec, tmp_path / "c", strict=True).status == 1


def test_without_a_cache(
    generate: Generate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANTRY_CACHE_DIR", "")
    assert generate(PETSTORE, tmp_path / "out").status == 0
    assert not (tmp_path / "cache").exists()


def test_each_kind_keeps_only_its_newest_entries(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    for index in range(KEEP_PER_KIND + 5):
        cache.put("kind", f"entry{index:03}", str(index))
        os.utime(tmp_path / "kind" / f"entry{index:03}", (index, index))
    cache.put("kind", "last", "x")
    names = sorted(p.name for p in (tmp_path / "kind").iterdir())
    assert len(names) == KEEP_PER_KIND
    assert "last" in names and "entry000" not in names


def test_each_kind_keeps_its_newest_entries_within_a_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache_module, "KEEP_BYTES_PER_KIND", 250)
    cache = Cache(tmp_path)
    for index in range(5):
        cache.put("kind", f"entry{index}", "x" * 100)
        os.utime(tmp_path / "kind" / f"entry{index}", (index, index))
    assert sorted(p.name for p in (tmp_path / "kind").iterdir()) == ["entry3", "entry4"]
    cache.put("kind", "huge", "x" * 1000)  # the newest entry stays, whatever its size
    assert [p.name for p in (tmp_path / "kind").iterdir()] == ["huge"]
    assert cache.get("kind", "huge") == "x" * 1000
