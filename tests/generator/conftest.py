"""Fixtures: run the generator from the repository root with a private cache."""

from __future__ import annotations

from pathlib import Path

import pytest
from generator_support import REPO, Generate, call_generate


@pytest.fixture
def in_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Run from the repository root, with the generator's cache in a temporary folder."""
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("GANTRY_CACHE_DIR", str(tmp_path / "cache"))
    return REPO


@pytest.fixture
def generate(in_repo: Path) -> Generate:
    """`gantry generate`, in-process, output captured."""
    return call_generate
