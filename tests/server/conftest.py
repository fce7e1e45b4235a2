"""Shared fixtures for server tests.

``storage_db``: a migrated, empty ``server.storage.Database``. It runs on SQLite (a fresh file
per test) and, when ``GANTRY_TEST_DATABASE_URL`` is set, also on that PostgreSQL database inside
a fresh schema that is dropped afterwards. If the variable is set but the server cannot be
reached, the PostgreSQL cases fail rather than skip.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool

from server.storage import Database
from server.storage.db import normalize_url

PG_URL_ENV = "GANTRY_TEST_DATABASE_URL"


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV, "").strip() else ["sqlite"]


def _pg_admin(url: str) -> Engine:
    return create_engine(normalize_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT")


@pytest.fixture(params=_backends())
def storage_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'gantry.db'}")
        db.migrate()
        try:
            yield db
        finally:
            db.dispose()
        return

    base = os.environ[PG_URL_ENV].strip()
    schema = f"gantry_test_{secrets.token_hex(6)}"
    admin = _pg_admin(base)
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # unreachable or misconfigured: fail, never skip
        admin.dispose()
        pytest.fail(f"{PG_URL_ENV} is set but PostgreSQL is not usable: {exc}", pytrace=False)
    try:
        url = normalize_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        db = Database(url)
        try:
            db.migrate()
            yield db
        finally:
            db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
