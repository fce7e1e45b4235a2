"""A database made by an earlier head, with data in it, upgrades to the current head and keeps
working: every row is still there, its users still sign in, its API key still reads.

Each snapshot in ``snapshots/`` (written by ``make migration`` before it generates a revision)
is loaded at its own revision on SQLite and, with ``GANTRY_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import func, select, table

from server.app import create_app
from server.config import Config
from server.storage.db import Database, alembic_config, script_heads
from tests.storage.snapshots import SNAPSHOT_DIR, load_rows

SNAPSHOTS = sorted(SNAPSHOT_DIR.glob("*.json"))


def test_every_head_has_a_data_snapshot() -> None:
    """``make migration`` writes one; without it the next revision has no data to upgrade."""
    heads = script_heads() or frozenset()
    assert heads, "the migration scripts name no head"
    for head in heads:
        assert (SNAPSHOT_DIR / f"{head}.json").is_file(), (
            f"no data snapshot of revision {head}: run `.venv/bin/python -m tests.storage.snapshots`"
        )


@pytest.mark.parametrize("snapshot_path", SNAPSHOTS, ids=[p.stem for p in SNAPSHOTS])
def test_upgrade_keeps_data(snapshot_path: Path, database_url: str, tmp_path: Path) -> None:
    snapshot: dict[str, Any] = json.loads(snapshot_path.read_text(encoding="utf-8"))
    old = Database(database_url)
    try:
        cfg = alembic_config(old.url)
        with old.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, snapshot["revision"])
        load_rows(old.engine, snapshot["tables"])
    finally:
        old.dispose()

    app = create_app(
        Config(database_url=database_url, var_dir=tmp_path, secret_key="t", auto_migrate=True)
    )
    database = app.extensions["gantry"].database
    try:
        with database.engine.connect() as conn:
            for name, rows in snapshot["tables"].items():
                count = conn.execute(select(func.count()).select_from(table(name))).scalar_one()
                assert count == len(rows), name
        secrets = snapshot["secrets"]
        for user in secrets["users"]:
            client = app.test_client()
            login = client.post(
                "/api/v1/auth/login",
                json={"email": user["email"], "password": secrets["password"]},
            )
            assert login.status_code == 200, login.get_data(as_text=True)
            me = client.get("/api/v1/auth/me")
            assert me.status_code == 200
            assert me.get_json()["user"]["id"] == user["id"]
        key = {"Authorization": f"Bearer {secrets['api_key']}"}
        members = app.test_client().get(
            f"/api/v1/workspaces/{secrets['workspace_id']}/members", headers=key
        )
        assert members.status_code == 200, members.get_data(as_text=True)
        listed = {member["user_id"] for member in members.get_json()["items"]}
        assert {u["id"] for u in secrets["users"]} <= listed
    finally:
        database.dispose()
