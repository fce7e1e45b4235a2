"""Alembic environment for Gantry's storage.

``server.storage.db.Database.migrate`` passes an open connection in ``config.attributes``;
the ``alembic`` command line (``alembic -c server/storage/alembic.ini ...``) instead uses
``sqlalchemy.url`` from the config or ``$GANTRY_DATABASE_URL``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import JSON
from sqlalchemy.engine import Connection

from server.storage.db import DATABASE_URL_ENV, Database, normalize_url
from server.storage.models import Base
from server.storage.types import UTCDateTime

config = context.config
if config.config_file_name is not None:  # the alembic command line: log like it usually does
    fileConfig(config.config_file_name, disable_existing_loggers=False)
target_metadata = Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(DATABASE_URL_ENV, "")
    if not url:
        raise RuntimeError(f"set sqlalchemy.url or ${DATABASE_URL_ENV} to run migrations")
    return normalize_url(url).render_as_string(hide_password=False)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Generated revisions spell the models' portable types in plain SQLAlchemy, so a revision
    never imports application code that may change after it is written."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, JSON) and "postgresql" in obj._variant_mapping:
        # JSONDocument()
        autogen_context.imports.add("from sqlalchemy.dialects import postgresql")
        return 'sa.JSON().with_variant(postgresql.JSONB(), "postgresql")'
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=render_item,
    )


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    db = Database(_url())  # same connect-time settings (SQLite pragmas) as the server
    try:
        with db.engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        db.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
