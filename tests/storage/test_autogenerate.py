"""``make migration``: a model change becomes a revision that, applied, matches the models."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, ForeignKey, Index, String, Table

from server.storage.autogenerate import generate, next_revision_id
from server.storage.db import MIGRATIONS_DIR, Database, alembic_config
from server.storage.models import Base
from server.storage.types import JSONDocument, UTCDateTime


@pytest.fixture
def extra_table() -> Iterator[Table]:
    """A table the migrations do not know yet, added to the models for one test."""
    table = Table(
        "widgets",
        Base.metadata,
        Column("id", String(32), primary_key=True),
        Column("workspace_id", String(32), ForeignKey("workspaces.id", ondelete="CASCADE")),
        Column("spec", JSONDocument()),
        Column("created_at", UTCDateTime(), nullable=False),
        Index("ix_widgets_workspace_id", "workspace_id"),
    )
    yield table
    Base.metadata.remove(table)


def _copy_of_migrations(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(MIGRATIONS_DIR, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def test_nothing_to_generate_when_models_and_head_agree(tmp_path: Path) -> None:
    assert generate("nothing", _copy_of_migrations(tmp_path)) is None


def test_a_new_table_becomes_a_revision_that_matches_the_models(
    tmp_path: Path, extra_table: Table
) -> None:
    scripts = _copy_of_migrations(tmp_path)
    path = generate("Add widgets!", scripts)
    assert path is not None
    assert path.name == f"r{next_revision_id()}_add_widgets.py"
    text = path.read_text(encoding="utf-8")
    assert "op.create_table(" in text and '"widgets"' in text
    # Portable types are spelled in plain SQLAlchemy: a revision imports no application code.
    assert "server." not in text
    assert "sa.DateTime(timezone=True)" in text

    database = Database(f"sqlite:///{tmp_path / 'upgraded.db'}")
    try:
        cfg = alembic_config(database.url)
        cfg.set_main_option("script_location", str(scripts))
        with database.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        database.dispose()
