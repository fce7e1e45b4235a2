"""Fixtures for the run queue's tests: a database (SQLite, and PostgreSQL with
``GANTRY_TEST_DATABASE_URL``) with the models' schema, emptied of runs before each test, one
workspace, and units of work on a clock the test moves.

The schema is built once per backend and session (building it costs a second on PostgreSQL);
each test starts with no runs, which is what a queue's tests need.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.pool import NullPool

from server.domain.unit import SYSTEM, Actor, UnitOfWork, unit_of_work
from server.storage import repositories as repo
from server.storage.db import Database, normalize_url
from server.storage.models import Base
from server.storage.run_models import Artifact, Run, RunLog, RunStep, RunTransition
from tests.conftest import PG_URL_ENV

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@dataclass
class Queue:
    """A database with one workspace, and a clock the test moves."""

    database: Database
    workspace_id: str
    url: str
    now: datetime = field(default=T0)

    def unit(self, actor: Actor = SYSTEM) -> AbstractContextManager[UnitOfWork]:
        """One committed unit of work (a writer, as the executor's are) at ``now``."""
        return unit_of_work(self.database.write_sessionmaker, actor, now=self.now)

    def advance(self, **delta: Any) -> None:
        self.now += timedelta(**delta)


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV, "").strip() else ["sqlite"]


@pytest.fixture(scope="session", params=_backends())
def queue_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database with the models' schema, for the whole session: a SQLite file or a
    PostgreSQL schema of its own (dropped afterwards)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('runs') / 'q.db'}"
        _build(url)
        yield url
        return
    base = os.environ[PG_URL_ENV].strip()
    schema = f"gantry_runs_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # unreachable or misconfigured: fail, never skip
        admin.dispose()
        pytest.fail(f"{PG_URL_ENV} is set but PostgreSQL is not usable: {exc}", pytrace=False)
    url = normalize_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    rendered = url.render_as_string(hide_password=False)
    try:
        _build(rendered)
        yield rendered
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _build(url: str) -> None:
    database = Database(url)
    try:
        Base.metadata.create_all(database.engine)
    finally:
        database.dispose()


@pytest.fixture
def queue(queue_database_url: str, tmp_path: Path) -> Iterator[Queue]:
    database = Database(queue_database_url)
    with database.session(write=True) as s:
        for model in (Artifact, RunLog, RunStep, RunTransition, Run):
            s.execute(delete(model))
        user = repo.create_user(
            s, email=f"{secrets.token_hex(6)}@example.com", name="Runs", is_superadmin=False
        )
        workspace = repo.create_workspace(
            s, name="Runs", slug=f"runs-{secrets.token_hex(6)}", owner_id=user.id
        )
    try:
        yield Queue(database, workspace.id, queue_database_url)
    finally:
        database.dispose()
