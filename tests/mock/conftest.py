"""Fixtures: a mock app per corpus spec, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

CORPUS_DIR = Path(__file__).resolve().parents[1] / "generator" / "corpus"

MockFactory = Callable[[str], Flask]


@pytest.fixture(scope="session")
def mock_app(tmp_path_factory: pytest.TempPathFactory) -> MockFactory:
    """`mock_app("composition.yaml")`: the mock of a corpus spec (cached per session)."""
    from server.mock.app import create_mock_app

    cache = tmp_path_factory.mktemp("mock-cache")
    apps: dict[str, Flask] = {}

    def build(name: str) -> Flask:
        if name not in apps:
            apps[name] = create_mock_app(CORPUS_DIR / name, cache_dir=cache)
        return apps[name]

    return build
