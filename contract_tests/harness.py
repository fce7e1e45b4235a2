"""Builds the app under test: a fresh database, the bootstrap superadmin, one owned workspace."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask

from server.app import create_app
from server.config import Config

BOOTSTRAP_TOKEN = "pat_" + "C0ntractSuite" * 3 + "0"
AUTH_HEADERS = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}


def database_url(var_dir: Path) -> str:
    """SQLite in a fresh directory, or the PostgreSQL of GANTRY_TEST_DATABASE_URL."""
    return os.environ.get("GANTRY_TEST_DATABASE_URL") or f"sqlite:///{var_dir / 'contract.db'}"


def build_app() -> tuple[Flask, dict[str, Any]]:
    """A fresh app whose bootstrap superadmin owns one workspace; and the spec it serves."""
    os.environ.setdefault("GANTRY_ARGON2_PROFILE", "fast")
    var_dir = Path(tempfile.mkdtemp(prefix="gantry-contract-"))
    url = database_url(var_dir)
    if url.startswith("postgresql"):
        from contract_tests.pg import reset_database

        reset_database(url)
    app = create_app(
        Config(
            database_url=url,
            var_dir=var_dir,
            bootstrap_token=BOOTSTRAP_TOKEN,
            secret_key="contract-suite",
            login_rate_per_minute=100_000,
        )
    )
    client = app.test_client()
    created = client.post(
        "/api/v1/workspaces",
        json={"name": "Contract suite", "slug": "contract-suite"},
        headers=AUTH_HEADERS,
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    document = client.get("/api/v1/openapi.json").get_json()
    return app, document
