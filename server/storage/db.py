"""The database handle: one Engine, one sessionmaker, migrations.

``Database(url)`` accepts any SQLAlchemy URL; ``postgres://`` and ``postgresql://`` are rewritten
to the psycopg 3 driver (``postgresql+psycopg://``). SQLite connections get WAL journaling,
foreign keys ON and a busy timeout on every connect.

Use ``with db.session() as s:`` for one unit of work: it commits when the block ends normally and
rolls back when anything escapes it (an ``ApiError`` included), so a failed request leaves
nothing half-written. Objects stay readable after the block (``expire_on_commit=False``).

Three kinds of transaction, told apart on SQLite by the statement that opens them:

* writers (``session(write=True)``, ``write_sessionmaker``; the API's unsafe methods) begin with
  ``BEGIN IMMEDIATE``: they take the database's write lock before their first read, so writers
  run one after another and every rule a writer checks still holds when it commits. On
  PostgreSQL the rules that span rows take row locks instead (``server.storage.users``,
  ``server.storage.workspaces``);
* readers (``read_sessionmaker``; the API's safe methods) open no transaction: each statement
  reads the latest commit, as under PostgreSQL's READ COMMITTED, and the rare write of a reader
  (a credential's last-use stamp) waits for the write lock like any statement. In a transaction
  that had read first, SQLite would refuse that write at once when another writer had
  committed since ("database is locked"), and the read would fail;
* everything else (``session()``) begins with a deferred ``BEGIN``.

Pools are per process: a process closes its idle pooled connections before it forks, and the
child (a gunicorn worker, forked after the preloaded app migrated and bootstrapped) starts with
an empty pool of its own and never touches a connection its parent opened.

Alembic is imported only to migrate: importing it costs about a tenth of a second of every
start-up, and a database already at the head revision (every start-up but the first after an
upgrade) needs none of it.
"""

from __future__ import annotations

import ast
import logging
import os
import sqlite3
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = ["DATABASE_URL_ENV", "MIGRATIONS_DIR", "Database", "alembic_config", "normalize_url"]

log = logging.getLogger("gantry.storage")

DATABASE_URL_ENV = "GANTRY_DATABASE_URL"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 5000
# Arbitrary constant key for pg_advisory_xact_lock: one migrator at a time per database.
_PG_MIGRATION_LOCK_KEY = 0x67616E747279  # "gantry"
# Execution option naming the statement that opens a SQLite transaction (``_sqlite_begin``).
_SQLITE_BEGIN = "gantry_sqlite_begin"

# Every live engine, so one fork hook can reset their pools (``_forget_parent_connections``).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _close_idle_connections() -> None:
    """Before a fork: close the pooled connections, so the child inherits no idle one."""
    for engine in list(_ENGINES):
        engine.pool.dispose()


def _forget_parent_connections() -> None:
    """In a forked child: a fresh pool, leaving the parent's connections alone (SQLAlchemy's
    ``dispose(close=False)`` recipe); a connection shared by two processes interleaves their
    protocol streams and transactions."""
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(before=_close_idle_connections, after_in_child=_forget_parent_connections)


def normalize_url(url: str | URL) -> URL:
    """Parse ``url``, pinning PostgreSQL to psycopg 3."""
    parsed = make_url(url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_sqlite_memory(url: URL) -> bool:
    database = url.database or ""
    return database in ("", ":memory:") or url.query.get("mode") == "memory"


def alembic_config(url: URL | None = None) -> Config:
    """An Alembic config built in code (no alembic.ini, independent of the working directory)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if url is not None:
        rendered = url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return cfg


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off; ``_sqlite_begin`` opens every transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _use_wal(cursor: Any) -> None:
    """Switch the file to WAL journaling (once per file; it persists).

    Switching needs an exclusive lock and SQLite answers "database is locked" at once, without
    waiting on the busy timeout, when another connection opens the fresh file at the same
    moment (workers or migrators starting together). Retry for up to the busy timeout.
    """
    if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _sqlite_begin(connection: Connection) -> None:
    """Open the transaction as its engine says (SQLAlchemy's recipe for pysqlite transaction
    control): ``BEGIN IMMEDIATE``, ``BEGIN``, or nothing for a reader."""
    statement = connection.get_execution_options().get(_SQLITE_BEGIN, "BEGIN")
    if statement:
        connection.exec_driver_sql(statement)


class Database:
    """An Engine plus a sessionmaker for one database URL."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        self.url: URL = normalize_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000,
            }
            if _is_sqlite_memory(self.url):
                # One shared connection, or every checkout would see a different empty database.
                kwargs["poolclass"] = StaticPool
            else:
                Path(self.url.database or "").expanduser().resolve().parent.mkdir(
                    parents=True, exist_ok=True
                )
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.dialect_name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_on_connect)
            event.listen(self.engine, "begin", _sqlite_begin)
        if not _is_sqlite_memory(self.url):  # a memory database lives in one process anyway
            _ENGINES.add(self.engine)
        # The same pool, for writers and for readers (see above).
        self.write_engine: Engine = self.engine.execution_options(
            **{_SQLITE_BEGIN: "BEGIN IMMEDIATE"}
        )
        self.read_engine: Engine = self.engine.execution_options(**{_SQLITE_BEGIN: ""})
        # Public for callers that manage the transaction themselves (open lazily, commit or
        # roll back, close); everyone else uses ``session()``.
        self.sessionmaker: sessionmaker[Session] = sessionmaker(
            bind=self.engine, expire_on_commit=False, autoflush=True
        )
        self.write_sessionmaker: sessionmaker[Session] = sessionmaker(
            bind=self.write_engine, expire_on_commit=False, autoflush=True
        )
        self.read_sessionmaker: sessionmaker[Session] = sessionmaker(
            bind=self.read_engine, expire_on_commit=False, autoflush=True
        )

    @classmethod
    def from_env(cls, default_dir: str | os.PathLike[str], *, echo: bool = False) -> Database:
        """``$GANTRY_DATABASE_URL``, else SQLite at ``<default_dir>/var/gantry.db``.

        The directory of a SQLite file is created if missing.
        """
        return cls.from_url(
            os.environ.get(DATABASE_URL_ENV, ""), Path(default_dir) / "var", echo=echo
        )

    @classmethod
    def from_url(
        cls, url: str | URL | None, var_dir: str | os.PathLike[str], *, echo: bool = False
    ) -> Database:
        """``url`` if given (non-empty), else SQLite at ``<var_dir>/gantry.db`` (note: directly
        in ``var_dir``, unlike ``from_env``'s ``<default_dir>/var/``)."""
        if url is None or (isinstance(url, str) and not url.strip()):
            path = (Path(var_dir) / "gantry.db").resolve()
            url = URL.create("sqlite", database=str(path)).render_as_string()
        return cls(url.strip() if isinstance(url, str) else url, echo=echo)

    @property
    def dialect_name(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self.engine.dialect.name

    @contextmanager
    def session(self, *, write: bool = False) -> Iterator[Session]:
        """One transaction: commit on success, roll back on any exception, always close.

        ``write=True`` for a unit of work that checks a rule before it writes (see above).
        """
        session = (self.write_sessionmaker if write else self.sessionmaker)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """``alembic upgrade head``; safe to call from several processes at once.

        A database already at the head revision is left alone without loading Alembic.
        """
        if self._at_head():
            return
        from alembic import command

        cfg = alembic_config(self.url)
        with self.write_engine.connect() as connection:
            self._lock_for_migration(connection)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")
            connection.commit()

    def _lock_for_migration(self, connection: Connection) -> None:
        if self.dialect_name == "sqlite":
            # The write engine's transaction takes SQLite's write lock up front; a concurrent
            # migrator waits (busy_timeout), then finds the schema current and does nothing.
            connection.exec_driver_sql("SELECT 1")
        elif self.dialect_name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK_KEY}
            )

    def _at_head(self) -> bool:
        """Whether the database records exactly the head revision of the migration scripts.

        Alembic commits the revision with the schema change, so a database that records the
        head has the whole schema; anything else (no version table yet, an older revision,
        scripts this check cannot read) goes through Alembic.
        """
        heads = script_heads()
        if heads is None:
            return False
        try:
            with self.engine.connect() as connection:
                rows = connection.exec_driver_sql(f"SELECT version_num FROM {_VERSION_TABLE}")
                recorded = {str(row[0]) for row in rows}
        except DBAPIError:  # no version table: never migrated
            return False
        return recorded == heads

    def current_revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first migration)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def reachable(self) -> bool:
        """Whether a trivial query succeeds, on a connection of its own so that a broken
        database fails no caller's transaction (a health check answers, it does not fail)."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except Exception:
            log.warning("database health check failed", exc_info=True)
            return False
        return True

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


# Alembic's default, which ``migrations/env.py`` keeps.
_VERSION_TABLE = "alembic_version"
_NOT_LITERAL = object()


@lru_cache(maxsize=1)
def script_heads() -> frozenset[str] | None:
    """The head revisions of ``migrations/versions``: the revisions no script revises.

    Read from each script's ``revision`` and ``down_revision`` literals, as Alembic reads them,
    without importing Alembic or the scripts; ``None`` when a script does not state them as
    plain literals (Alembic then decides).
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in sorted((MIGRATIONS_DIR / "versions").glob("*.py")):
        if path.name.startswith(("__", ".#")):  # Alembic skips these too
            continue
        found = _literals(path, ("revision", "down_revision"))
        revision, down = found.get("revision"), found.get("down_revision")
        if not isinstance(revision, str):
            return None
        downs = down if isinstance(down, tuple) else (down,)
        if not all(d is None or isinstance(d, str) for d in downs):
            return None
        revisions.add(revision)
        revised.update(d for d in downs if d is not None)
    heads = frozenset(revisions - revised)
    return heads or None


def _literals(path: Path, names: tuple[str, ...]) -> dict[str, Any]:
    """Top-level ``name = <literal>`` assignments (annotated or not) of a Python file."""
    found: dict[str, Any] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in names:
                try:
                    found[target.id] = ast.literal_eval(value)
                except ValueError:
                    found[target.id] = _NOT_LITERAL
    return found
