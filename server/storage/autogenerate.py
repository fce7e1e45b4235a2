"""``make migration NAME=…``: write the next Alembic revision from the ORM models.

The models in ``server/storage/models.py`` are the schema; a migration is their difference from
the current head, generated against a scratch SQLite database upgraded to that head, then read
and committed by its author (autogenerate cannot see renames or data moves). Revisions are
numbered ``0001``, ``0002``… in files named ``r<rev>_<slug>.py``.

The test that upgrades the head's schema and compares it with the models
(``tests/server/test_storage.py``) fails until the models and the migrations agree again.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from server.storage.db import MIGRATIONS_DIR, Database, alembic_config, script_heads


def next_revision_id() -> str:
    """One more than the highest numbered revision."""
    numbers = [int(h) for h in script_heads() or () if h.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def generate(name: str, migrations_dir: Path = MIGRATIONS_DIR) -> Path | None:
    """Write the revision for the models' difference from the head; ``None`` if there is none.

    ``migrations_dir`` is the Alembic script folder (a copy of it in the tool's own test).
    """
    from alembic import command
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from server.storage.models import Base

    slug = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not slug:
        raise SystemExit("NAME must contain letters or digits")
    with tempfile.TemporaryDirectory() as tmp:
        database = Database(f"sqlite:///{Path(tmp) / 'head.db'}")
        try:
            database.migrate()
            with database.engine.connect() as connection:
                context = MigrationContext.configure(connection, opts={"compare_type": True})
                if not compare_metadata(context, Base.metadata):
                    return None
            cfg = alembic_config(database.url)
            cfg.set_main_option("script_location", str(migrations_dir).replace("%", "%%"))
            cfg.set_main_option("file_template", "r%%(rev)s_%%(slug)s")
            revision = next_revision_id()
            command.revision(cfg, message=name, autogenerate=True, rev_id=revision)
        finally:
            database.dispose()
    (path,) = (migrations_dir / "versions").glob(f"r{revision}_*.py")
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if Path(ruff).exists():
        subprocess.run([ruff, "format", "--quiet", str(path)], check=False)
    return path


def main() -> int:
    """Parse ``NAME`` and write the revision."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="what the revision changes, e.g. 'rate limit hits'")
    args = parser.parse_args()
    path = generate(args.name)
    if path is None:
        print("the models and the migration head agree: nothing to generate")
        return 0
    print(f"wrote {path.relative_to(MIGRATIONS_DIR.parents[2])}: read it before committing")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
