"""A real server for end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from contract_tests.live import LiveServer, live_server

BOOTSTRAP_TOKEN = "pat_" + "E2eServerToken" * 2 + "abcdefghijkl"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """`gantry serve` on a free 127.0.0.1 port with a fresh SQLite database."""
    with live_server(tmp_path_factory.mktemp("live"), BOOTSTRAP_TOKEN) as running:
        yield running
