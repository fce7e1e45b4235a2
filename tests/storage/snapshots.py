"""Data snapshots of released schema revisions, for the upgrade-with-data test.

A snapshot is every row of a database at one migration head, made by driving the API of the
code that was current at that head (users, a workspace with members, an API key, audit events),
written as JSON with the secrets needed to use it again. ``make migration`` writes the snapshot
of the head it has just generated, with the code that has that head, so every head that a
deployment may run keeps a database to upgrade from.

    python -m tests.storage.snapshots        # write tests/storage/snapshots/<head>.json if missing
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Integer, MetaData, Table, insert, select, text
from sqlalchemy.engine import Engine

SNAPSHOT_DIR = Path(__file__).resolve().parent / "snapshots"
PASSWORD = "snapshot-password-0123456789"
BOOTSTRAP_TOKEN = "pat_" + "Snapshot0Bootstrap0Token0" + "0123456789abcde"
_SKIP_TABLES = {"alembic_version"}


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):  # SQLite stores UTC without an offset: say it is UTC
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return {"$datetime": aware.isoformat()}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$datetime"}:
        return datetime.fromisoformat(value["$datetime"])
    return value


def dump_rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (but Alembic's), in a stable order."""
    metadata = MetaData()
    metadata.reflect(engine)
    tables: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as conn:
        for name in sorted(metadata.tables):
            if name in _SKIP_TABLES:
                continue
            table = metadata.tables[name]
            order = list(table.primary_key.columns) or list(table.c)
            rows = conn.execute(select(table).order_by(*order)).mappings()
            tables[name] = [{k: _encode(v) for k, v in row.items()} for row in rows]
    return tables


def load_rows(engine: Engine, tables: dict[str, list[dict[str, Any]]]) -> None:
    """Insert a snapshot's rows into a database at the snapshot's revision, parents first."""
    metadata = MetaData()
    metadata.reflect(engine)
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            rows = tables.get(table.name, [])
            if rows:
                decoded = [{k: _decode(v) for k, v in row.items()} for row in rows]
                conn.execute(insert(table), decoded)
                _advance_sequences(conn, table)


def _advance_sequences(conn: Connection, table: Table) -> None:
    """PostgreSQL: move an auto-incrementing key's sequence past the ids loaded explicitly."""
    if conn.dialect.name != "postgresql":
        return
    for column in table.primary_key.columns:
        if column.autoincrement is True or isinstance(column.type, Integer):
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence(:t, :c), "
                    f'(SELECT max("{column.name}") FROM "{table.name}"))'
                ),
                {"t": table.name, "c": column.name},
            )


def make_snapshot() -> dict[str, Any]:
    """Build a database at the current head through the API and return its snapshot."""
    os.environ.setdefault("GANTRY_ARGON2_PROFILE", "fast")
    from server.app import create_app
    from server.config import Config

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(
            Config(
                database_url=f"sqlite:///{Path(tmp) / 'snapshot.db'}",
                var_dir=Path(tmp),
                bootstrap_token=BOOTSTRAP_TOKEN,
                secret_key="snapshot",
                login_rate_per_minute=100_000,
            )
        )
        database = app.extensions["gantry"].database
        try:
            secrets = _populate(app)
            revision = database.current_revision()
            rows = dump_rows(database.engine)
        finally:
            database.dispose()
    return {"revision": revision, "secrets": secrets, "tables": rows}


def _populate(app: Any) -> dict[str, Any]:
    admin = {"Authorization": f"Bearer {BOOTSTRAP_TOKEN}"}
    base = "/api/v1"
    client = app.test_client()

    def ok(response: Any, status: int) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")
        return response.get_json()

    users = []
    for name in ("ada", "grace", "linus"):
        email = f"{name}@snapshot.example"
        body = {"email": email, "name": name.title(), "password": PASSWORD}
        created = ok(app.test_client().post(f"{base}/auth/register", json=body), 201)
        users.append({"id": created["id"], "email": email})
    workspace = ok(
        client.post(
            f"{base}/workspaces", json={"name": "Snapshot", "slug": "snapshot"}, headers=admin
        ),
        201,
    )
    wid = workspace["id"]
    for user, role in zip(users, ("owner", "editor", "viewer"), strict=True):
        ok(
            client.post(
                f"{base}/workspaces/{wid}/members",
                json={"user_id": user["id"], "role": role},
                headers=admin,
            ),
            201,
        )
    key = ok(
        client.post(
            f"{base}/workspaces/{wid}/api-keys",
            json={"name": "snapshot key", "role": "viewer"},
            headers=admin,
        ),
        201,
    )
    return {
        "password": PASSWORD,
        "users": users,
        "workspace_id": wid,
        "api_key": key["key"],
    }


def main() -> int:
    """Write the snapshot of the current head unless it exists."""
    from server.storage.db import script_heads

    heads = script_heads() or frozenset()
    if len(heads) != 1:
        print(f"expected one migration head, found {sorted(heads)}", file=sys.stderr)
        return 1
    (head,) = heads
    path = SNAPSHOT_DIR / f"{head}.json"
    if path.exists():
        print(f"snapshot of {head} exists: {path.name}")
        return 0
    snapshot = make_snapshot()
    SNAPSHOT_DIR.mkdir(exist_ok=True)
    path.write_text(json.dumps(snapshot, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote the data snapshot of revision {head}: {path.name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
