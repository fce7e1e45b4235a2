"""PostgreSQL runs: each run gets a schema of its own, and an unreachable server fails loudly."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from server.storage.db import normalize_url


class PostgresUnavailable(RuntimeError):
    """GANTRY_TEST_DATABASE_URL is set but the server cannot be used."""


@contextmanager
def temporary_schema(base_url: str) -> Iterator[str]:
    """A URL whose connections use a fresh schema of ``base_url``'s database; dropped after.

    Runs in parallel (pytest workers, a live server next to the in-process one) never share
    tables, and nothing outside the new schema is touched.
    """
    schema = f"gantry_contract_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base_url), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        admin.dispose()
        raise PostgresUnavailable(
            f"GANTRY_TEST_DATABASE_URL is set but PostgreSQL is not usable: {exc}"
        ) from exc
    try:
        url = normalize_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()
