"""Storage layer: migrations, round trips, keyset pagination, transactions, constraints.

Every test taking ``storage_db`` runs on SQLite and, with ``GANTRY_TEST_DATABASE_URL`` set, on
PostgreSQL as well (see ``conftest.py``).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect, select
from sqlalchemy.exc import IntegrityError

from server import security
from server.storage import Database, rows
from server.storage import repositories as repo
from server.storage.db import alembic_config, normalize_url
from server.storage.models import (
    ApiKey,
    AuditEvent,
    Base,
    Membership,
    PersonalAccessToken,
    User,
    UserSession,
    Workspace,
)

T = TypeVar("T")

TABLES = {
    "users",
    "sessions",
    "personal_access_tokens",
    "workspaces",
    "memberships",
    "api_keys",
    "audit_events",
}
T0 = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fast_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(security.ARGON2_PROFILE_ENV, "fast")


def _user(db: Database, email: str = "ada@example.com", **kw: Any) -> User:
    with db.session() as s:
        return repo.create_user(s, email=email, name=kw.pop("name", "Ada"), **kw)


def _workspace(db: Database, owner_id: str, slug: str = "acme", **kw: Any) -> Workspace:
    with db.session() as s:
        return repo.create_workspace(s, name="Acme", slug=slug, owner_id=owner_id, **kw)


def _api_key(
    s: Any,
    *,
    workspace_id: str,
    name: str,
    role: str,
    scopes: list[str],
    created_by: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[ApiKey, str]:
    """An active API key row, as the domain issues one."""
    secret = security.mint_secret("sk_")
    row = ApiKey(
        id=security.new_id("key_"),
        workspace_id=workspace_id,
        name=name,
        prefix=security.secret_prefix(secret),
        key_hash=security.hash_secret(secret),
        role=role,
        scopes=scopes,
        status="active",
        expires_at=expires_at,
        created_by=created_by,
        created_at=now or datetime.now(UTC),
    )
    return rows.add(s, row), secret


def _schema_diff(db: Database, metadata: MetaData = Base.metadata) -> list[Any]:
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


# --- security ---------------------------------------------------------------------------------


def test_new_id_matches_the_spec_pattern() -> None:
    ids = {security.new_id("ws_") for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"ws_[0-9A-Za-z]{24}", i) for i in ids)
    assert re.fullmatch(r"aud_[0-9A-Za-z]{24}", security.new_id("aud"))  # "_" added
    for bad in ("WS_", "", "_", "w s_", "ws__", "toolongprefix_"):
        with pytest.raises(ValueError):
            security.new_id(bad)


def test_secrets_hash_and_prefix() -> None:
    pat = security.mint_secret("pat_")
    key = security.mint_secret("sk_")
    assert re.fullmatch(r"pat_[0-9A-Za-z]{40}", pat)
    assert re.fullmatch(r"sk_[0-9A-Za-z]{40}", key)
    assert re.fullmatch(r"wrk_[0-9A-Za-z]{32}", security.mint_secret("wrk_", 32))
    assert security.mint_secret("rtk").startswith("rtk_")
    assert security.secret_prefix(pat) == pat[:8] and security.secret_prefix(pat).startswith("pat_")
    digest = security.hash_secret(pat)
    assert re.fullmatch(r"[0-9a-f]{64}", digest) and digest == security.hash_secret(pat)
    assert security.secrets_equal(digest, security.hash_secret(pat))
    assert not security.secrets_equal(digest, security.hash_secret(key))


def test_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    fast = security.hash_password("correct horse")
    assert fast.startswith("$argon2id$")
    assert security.verify_password(fast, "correct horse")
    assert not security.verify_password(fast, "wrong")
    assert not security.verify_password(None, "correct horse")
    assert not security.verify_password("not-a-hash", "x")
    assert not security.needs_rehash(fast)
    assert security.needs_rehash("not-a-hash")
    monkeypatch.delenv(security.ARGON2_PROFILE_ENV)
    # Production profile: the fast hash still verifies but asks to be upgraded.
    assert security.verify_password(fast, "correct horse")
    assert security.needs_rehash(fast)


# --- database handle and migrations -----------------------------------------------------------


def test_migrations_apply_on_a_fresh_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "fresh.db"
    db = Database(f"sqlite:///{path}")
    try:
        assert path.parent.is_dir()
        assert db.current_revision() is None
        db.migrate()
        assert path.is_file()
        assert db.current_revision() == _head()
        assert set(inspect(db.engine).get_table_names()) >= TABLES
        assert _schema_diff(db) == []
        db.migrate()  # idempotent
        assert db.current_revision() == _head()
        with db.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    finally:
        db.dispose()


def test_migrations_work_from_another_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = Database(f"sqlite:///{tmp_path / 'cwd.db'}")
    try:
        db.migrate()
        assert db.current_revision() == _head()
    finally:
        db.dispose()


def test_concurrent_migrations_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    dbs = [Database(url) for _ in range(4)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(dbs))

    def run(db: Database) -> None:
        try:
            barrier.wait()
            db.migrate()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(db,)) for db in dbs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        assert dbs[0].current_revision() == _head()
        assert _schema_diff(dbs[0]) == []
    finally:
        for db in dbs:
            db.dispose()


def test_in_memory_sqlite_is_shared_across_sessions() -> None:
    db = Database("sqlite://")
    try:
        db.migrate()
        _user(db)
        with db.session() as s:
            assert repo.count_users(s) == 1
    finally:
        db.dispose()


def test_schema_matches_models(storage_db: Database) -> None:
    assert set(inspect(storage_db.engine).get_table_names()) >= TABLES
    assert storage_db.current_revision() == _head()
    assert _schema_diff(storage_db) == []
    # Control: the comparison does notice a difference.
    extended = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(extended)
    extended.tables["users"].append_column(Column("extra", Integer))
    assert _schema_diff(storage_db, extended) != []


def test_downgrade_and_upgrade_again(storage_db: Database) -> None:
    cfg = alembic_config(storage_db.url)
    with storage_db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert not TABLES & set(inspect(storage_db.engine).get_table_names())
    storage_db.migrate()
    assert _schema_diff(storage_db) == []


def test_from_env_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANTRY_DATABASE_URL", raising=False)
    db = Database.from_env(tmp_path / "app")
    try:
        assert db.dialect_name == "sqlite"
        assert db.url.database == str((tmp_path / "app" / "var" / "gantry.db").resolve())
        assert (tmp_path / "app" / "var").is_dir()
    finally:
        db.dispose()
    monkeypatch.setenv("GANTRY_DATABASE_URL", f"sqlite:///{tmp_path / 'other' / 'x.db'}")
    db = Database.from_env(tmp_path / "app")
    try:
        assert db.url.database == str(tmp_path / "other" / "x.db")
        assert (tmp_path / "other").is_dir()
    finally:
        db.dispose()


def test_from_url_uses_var_dir_when_empty(tmp_path: Path) -> None:
    db = Database.from_url("", tmp_path / "var")
    try:
        assert db.url.database == str((tmp_path / "var" / "gantry.db").resolve())
        db.migrate()
        session = db.sessionmaker()  # the raw factory, for callers managing the transaction
        try:
            assert repo.count_users(session) == 0
        finally:
            session.close()
    finally:
        db.dispose()
    db = Database.from_url(f"sqlite:///{tmp_path / 'given.db'}", tmp_path / "unused")
    try:
        assert db.url.database == str(tmp_path / "given.db")
        assert not (tmp_path / "unused").exists()
    finally:
        db.dispose()


def test_postgres_urls_use_psycopg() -> None:
    for url in ("postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"):
        assert normalize_url(url).drivername == "postgresql+psycopg"


# --- transactions and constraints -------------------------------------------------------------


def test_session_rolls_back_everything_on_exception(storage_db: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), storage_db.session() as s:
        user = repo.create_user(s, email="a@example.com", name="A")
        repo.create_workspace(s, name="W", slug="w", owner_id=user.id)
        repo.append_audit_event(
            s,
            workspace_id=None,
            actor_type="system",
            actor_id=None,
            actor_label=None,
            action="user.created",
            target_type="user",
            target_id=user.id,
        )
        raise Boom
    with storage_db.session() as s:
        for model in (User, Workspace, Membership, AuditEvent):
            assert s.scalars(select(model)).all() == []


def test_integrity_error_mid_transaction_rolls_back_earlier_writes(storage_db: Database) -> None:
    _user(storage_db, "taken@example.com")
    with pytest.raises(IntegrityError), storage_db.session() as s:
        repo.create_user(s, email="new@example.com", name="New")
        repo.create_user(s, email="TAKEN@example.com", name="Dup")
    with storage_db.session() as s:
        assert repo.get_user_by_email(s, "new@example.com") is None
        assert repo.count_users(s) == 1


@pytest.mark.parametrize(
    "action",
    ["email", "slug", "membership", "pat_hash", "key_hash", "bad_status", "bad_role", "no_user"],
)
def test_constraint_violations_raise_integrity_error(storage_db: Database, action: str) -> None:
    owner = _user(storage_db)
    ws = _workspace(storage_db, owner.id)
    with pytest.raises(IntegrityError), storage_db.session() as s:
        if action == "email":
            repo.create_user(s, email="  ADA@Example.com ", name="Again")
        elif action == "slug":
            repo.create_workspace(s, name="Other", slug="acme", owner_id=owner.id)
        elif action == "membership":
            repo.add_member(s, ws.id, owner.id, "viewer")
        elif action == "pat_hash":
            pat, _ = repo.create_pat(s, user_id=owner.id, name="a", scopes=["read"], expires_at=T0)
            s.add(
                PersonalAccessToken(
                    id=security.new_id("tok_"),
                    user_id=owner.id,
                    name="b",
                    scopes=[],
                    prefix=pat.prefix,
                    token_hash=pat.token_hash,
                    status="active",
                    expires_at=T0,
                    created_at=T0,
                )
            )
            s.flush()
        elif action == "key_hash":
            key, _ = _api_key(
                s, workspace_id=ws.id, name="a", role="viewer", scopes=[], created_by=owner.id
            )
            s.add(
                ApiKey(
                    id=security.new_id("key_"),
                    workspace_id=ws.id,
                    name="b",
                    prefix=key.prefix,
                    key_hash=key.key_hash,
                    role="viewer",
                    scopes=[],
                    status="active",
                    created_by=owner.id,
                    created_at=T0,
                )
            )
            s.flush()
        elif action == "bad_status":
            repo.create_user(s, email="x@example.com", name="X", status="deleted")
        elif action == "bad_role":
            _api_key(s, workspace_id=ws.id, name="k", role="owner", scopes=[], created_by=owner.id)
        elif action == "no_user":
            repo.add_member(s, ws.id, "usr_doesnotexist", "viewer")


def test_naive_datetimes_are_refused(storage_db: Database) -> None:
    with pytest.raises(Exception, match="naive"), storage_db.session() as s:
        repo.create_user(s, email="n@example.com", name="N", now=datetime(2025, 1, 1))


# --- round trips --------------------------------------------------------------------------------


def test_user_round_trip(storage_db: Database) -> None:
    plus_two = timezone(timedelta(hours=2))
    created = datetime(2025, 3, 4, 7, 6, 7, 123456, tzinfo=plus_two)  # == T0
    with storage_db.session() as s:
        user = repo.create_user(
            s,
            email=" Grace@Example.COM",
            name="Grace",
            password_hash=security.hash_password("pw"),
            is_superadmin=True,
            now=created,
        )
    assert re.fullmatch(r"usr_[0-9A-Za-z]{24}", user.id)
    with storage_db.session() as s:
        got = repo.get_user_by_email(s, "GRACE@example.com")
        assert got is not None and got.id == user.id
        assert got.email == "grace@example.com"
        assert got.created_at == T0 and got.created_at.tzinfo is not None
        assert got.created_at.utcoffset() == timedelta(0)
        assert got.created_at.microsecond == 123456
        assert got.is_superadmin is True and got.status == "active"
        assert security.verify_password(got.password_hash, "pw")
        assert repo.count_superadmins(s) == 1
        later = T0 + timedelta(seconds=1)
        repo.update_user(s, got, name="G", status="blocked", password_hash=None, now=later)
    with storage_db.session() as s:
        got = repo.get_user(s, user.id)
        assert got is not None
        assert (got.name, got.status, got.password_hash) == ("G", "blocked", None)
        assert got.updated_at == T0 + timedelta(seconds=1) and got.created_at == T0
        assert repo.count_superadmins(s) == 0
        assert repo.count_superadmins(s, active_only=False) == 1
        assert repo.get_user(s, "usr_missing") is None


def test_user_search_and_delete_cascades(storage_db: Database) -> None:
    ada = _user(storage_db, "ada@example.com", name="Ada Lovelace")
    _user(storage_db, "grace@navy.mil", name="Grace Hopper")
    _user(storage_db, "x_y%z@example.com", name="Odd")
    ws = _workspace(storage_db, ada.id)
    with storage_db.session() as s:
        assert [u.email for u in repo.list_users(s, q="LOVE")] == ["ada@example.com"]
        assert repo.count_users(s, q="example.com") == 2
        assert repo.count_users(s, q="%") == 1  # LIKE wildcards are literal
        assert repo.count_users(s, q="_") == 1
        assert repo.count_users(s) == 3
        repo.update_user(s, repo.get_user_by_email(s, "grace@navy.mil"), status="blocked")  # type: ignore[arg-type]
        assert [u.email for u in repo.list_users(s, status="blocked")] == ["grace@navy.mil"]
        assert repo.count_users(s, status="active") == 2
        assert repo.count_users(s, q="example", status="active") == 2
        repo.create_session(s, ada.id)
        repo.create_pat(s, user_id=ada.id, name="t", scopes=["read"], expires_at=T0)
        assert repo.sole_owner_workspace_ids(s, ada.id) == [ws.id]
    with storage_db.session() as s:
        assert repo.delete_user(s, ada.id) is True
        assert repo.delete_user(s, ada.id) is False
    with storage_db.session() as s:
        for model in (UserSession, PersonalAccessToken, Membership):
            assert s.scalars(select(model)).all() == []
        assert repo.get_workspace(s, ws.id) is not None


def test_sessions(storage_db: Database) -> None:
    user = _user(storage_db)
    with storage_db.session() as s:
        row, cookie = repo.create_session(s, user.id, now=T0)
    assert re.fullmatch(r"ses_[0-9A-Za-z]{40}", cookie)
    assert row.token_hash == security.hash_secret(cookie) and cookie not in row.token_hash
    assert row.expires_at == T0 + timedelta(hours=12)
    assert row.absolute_expires_at == T0 + timedelta(days=7)
    with storage_db.session() as s:
        assert repo.get_active_session(s, "ses_wrong", now=T0) is None
        # Within the touch interval nothing is written.
        found = repo.get_active_session(s, cookie, now=T0 + timedelta(seconds=10))
        assert found is not None
        sess, u = found
        assert u.id == user.id and sess.last_seen_at == T0
        # Later the idle expiry slides.
        t1 = T0 + timedelta(hours=11)
        found = repo.get_active_session(s, cookie, now=t1)
        assert found is not None
    with storage_db.session() as s:
        stored = s.get(UserSession, row.id)
        assert stored is not None
        assert stored.last_seen_at == t1 and stored.expires_at == t1 + timedelta(hours=12)
        # Idle expiry: 12 h after the last touch.
        assert repo.get_active_session(s, cookie, now=t1 + timedelta(hours=12)) is None
    # Keep it alive past the absolute limit: the sliding expiry is capped at 7 days.
    t = t1
    with storage_db.session() as s:
        while t < T0 + timedelta(days=7) - timedelta(hours=6):
            t += timedelta(hours=6)
            found = repo.get_active_session(s, cookie, now=t)
            assert found is not None
            assert found[0].expires_at <= T0 + timedelta(days=7)
        assert repo.get_active_session(s, cookie, now=T0 + timedelta(days=7)) is None
    with storage_db.session() as s:
        _, other = repo.create_session(s, user.id)
        _, third = repo.create_session(s, user.id)
        keep = repo.get_active_session(s, third)
        assert keep is not None
        assert repo.delete_user_sessions(s, user.id, except_session_id=keep[0].id) == 2
        assert repo.get_active_session(s, other) is None
        assert repo.delete_session(s, keep[0].id) is True
        assert repo.delete_session(s, keep[0].id) is False
        repo.create_session(s, user.id, now=T0)
        assert repo.purge_expired_sessions(s, now=T0 + timedelta(hours=13)) == 1


def test_personal_access_tokens(storage_db: Database) -> None:
    user = _user(storage_db)
    other = _user(storage_db, "other@example.com")
    expires = T0 + timedelta(days=30)
    with storage_db.session() as s:
        pat, secret = repo.create_pat(
            s, user_id=user.id, name="ci", scopes=["read", "gateway"], expires_at=expires, now=T0
        )
    assert re.fullmatch(r"pat_[0-9A-Za-z]{40}", secret)
    assert re.fullmatch(r"tok_[0-9A-Za-z]{24}", pat.id)
    assert pat.prefix == secret[:8]
    with storage_db.session() as s:
        got = repo.get_pat_by_hash(s, security.hash_secret(secret))
        assert got is not None and got.id == pat.id
        assert got.scopes == ["read", "gateway"] and got.expires_at == expires
        assert got.status == "active" and got.last_used_at is None and got.revoked_at is None
        assert repo.get_pat(s, other.id, pat.id) is None
        assert repo.get_pat_by_hash(s, security.hash_secret(secret + "x")) is None
        repo.touch_pat(s, pat.id, now=T0 + timedelta(minutes=1))
        repo.touch_pat(s, pat.id, now=T0 + timedelta(minutes=1, seconds=30))  # throttled
    with storage_db.session() as s:
        got = repo.get_pat(s, user.id, pat.id)
        assert got is not None and got.last_used_at == T0 + timedelta(minutes=1)
        repo.update_pat(s, got, name="renamed")
        repo.touch_pat(s, pat.id, now=T0 + timedelta(minutes=3))
    with storage_db.session() as s:
        got = repo.get_pat(s, user.id, pat.id)
        assert got is not None and got.name == "renamed"
        assert got.last_used_at == T0 + timedelta(minutes=3)
        assert repo.revoke_pat(s, other.id, pat.id) is None
        revoked = repo.revoke_pat(s, user.id, pat.id, now=T0 + timedelta(hours=1))
        assert revoked is not None and revoked.status == "revoked"
    with storage_db.session() as s:
        assert repo.revoke_pat(s, user.id, pat.id) is None  # second revoke: 404
        got = repo.get_pat_by_hash(s, security.hash_secret(secret))
        assert got is not None and got.status == "revoked"
        assert got.revoked_at == T0 + timedelta(hours=1)
        assert repo.count_pats(s, user.id) == 1
        assert repo.count_pats(s, user.id, status="active") == 0
        assert [p.id for p in repo.list_pats(s, user.id, status="revoked")] == [pat.id]
        assert repo.list_pats(s, other.id) == []


def test_workspaces_and_memberships(storage_db: Database) -> None:
    owner = _user(storage_db, "owner@example.com")
    bob = _user(storage_db, "bob@example.com", name="Bob")
    stranger = _user(storage_db, "stranger@example.com")
    ws = _workspace(storage_db, owner.id, settings={"default_env": "prod", "limits": {"runs": 5}})
    assert re.fullmatch(r"ws_[0-9A-Za-z]{24}", ws.id)
    with storage_db.session() as s:
        got = repo.get_workspace(s, ws.id)
        assert got is not None and got.settings == {"default_env": "prod", "limits": {"runs": 5}}
        assert repo.get_workspace_by_slug(s, "acme") is not None
        assert repo.get_member_role(s, ws.id, owner.id) == "owner"
        pair = repo.get_workspace_for_member(s, ws.id, owner.id)
        assert pair is not None and pair[0].id == ws.id and pair[1] == "owner"
        assert repo.get_workspace_for_member(s, ws.id, stranger.id) is None
        assert repo.get_workspace_for_member(s, "ws_missing", owner.id) is None
        repo.add_member(s, ws.id, bob.id, "editor")
        assert repo.count_members(s, ws.id) == 2
        assert repo.count_members(s, ws.id, role="editor") == 1
        assert [m.user_id for m in repo.list_members(s, ws.id, role="owner")] == [owner.id]
        assert repo.count_owners(s, ws.id) == 1
        members = repo.list_members(s, ws.id, order="asc")
        assert [(m.role, m.email) for m in members] == [
            ("owner", "owner@example.com"),
            ("editor", "bob@example.com"),
        ]
        assert [(w.id, role) for w, role in repo.list_workspaces_for_user(s, bob.id)] == [
            (ws.id, "editor")
        ]
        assert repo.count_workspaces_for_user(s, bob.id) == 1
        assert repo.list_workspaces_for_user(s, stranger.id) == []
        repo.update_workspace(s, got, name="Acme 2", settings={"default_env": "dev"})
    with storage_db.session() as s:
        got = repo.get_workspace(s, ws.id)
        assert got is not None and got.name == "Acme 2" and got.settings == {"default_env": "dev"}
        assert got.updated_at > got.created_at
        # Last-owner rule.
        with pytest.raises(repo.LastOwnerError):
            repo.update_member_role(s, ws.id, owner.id, "admin")
        with pytest.raises(repo.LastOwnerError):
            repo.remove_member(s, ws.id, owner.id)
        assert repo.update_member_role(s, ws.id, stranger.id, "viewer") is None
        assert repo.remove_member(s, ws.id, stranger.id) is False
        promoted = repo.update_member_role(s, ws.id, bob.id, "owner")
        assert promoted is not None and promoted.role == "owner"
        assert repo.count_owners(s, ws.id) == 2
        assert repo.sole_owner_workspace_ids(s, owner.id) == []
        demoted = repo.update_member_role(s, ws.id, owner.id, "viewer")
        assert demoted is not None and demoted.role == "viewer"
        assert repo.remove_member(s, ws.id, owner.id) is True
        assert repo.get_member_role(s, ws.id, owner.id) is None
        assert repo.sole_owner_workspace_ids(s, bob.id) == [ws.id]


def test_deleting_a_workspace_cascades_but_keeps_audit(storage_db: Database) -> None:
    owner = _user(storage_db)
    ws = _workspace(storage_db, owner.id)
    keep = _workspace(storage_db, owner.id, slug="keep")
    with storage_db.session() as s:
        _api_key(s, workspace_id=ws.id, name="k", role="operator", scopes=[], created_by=owner.id)
        _api_key(s, workspace_id=keep.id, name="k", role="operator", scopes=[], created_by=owner.id)
        repo.append_audit_event(
            s,
            workspace_id=ws.id,
            actor_type="user",
            actor_id=owner.id,
            actor_label=owner.email,
            action="workspace.created",
            target_type="workspace",
            target_id=ws.id,
        )
    with storage_db.session() as s:
        assert repo.delete_workspace(s, ws.id) is True
        assert repo.delete_workspace(s, ws.id) is False
    with storage_db.session() as s:
        assert repo.get_workspace(s, ws.id) is None
        assert s.scalars(select(Membership).where(Membership.workspace_id == ws.id)).all() == []
        assert s.scalars(select(ApiKey).where(ApiKey.workspace_id == ws.id)).all() == []
        assert rows.count_by(s, ApiKey, workspace_id=keep.id) == 1
        assert repo.count_members(s, keep.id) == 1
        events = repo.list_audit_events(s, ws.id)
        assert [e.action for e in events] == ["workspace.created"]


def test_api_keys(storage_db: Database) -> None:
    owner = _user(storage_db)
    ws = _workspace(storage_db, owner.id)
    other_ws = _workspace(storage_db, owner.id, slug="other")
    with storage_db.session() as s:
        key, secret = _api_key(
            s,
            workspace_id=ws.id,
            name="gateway",
            role="operator",
            scopes=["gateway"],
            created_by=owner.id,
            expires_at=T0 + timedelta(days=1),
            now=T0,
        )
    with storage_db.session() as s:
        got = rows.find(s, ApiKey, key_hash=security.hash_secret(secret))
        assert got is not None and got.id == key.id and got.workspace_id == ws.id
        assert (got.role, got.scopes, got.status) == ("operator", ["gateway"], "active")
        assert got.expires_at == T0 + timedelta(days=1) and got.created_by == owner.id
        assert rows.get(s, ApiKey, key.id, workspace_id=other_ws.id) is None
        rows.touch(s, ApiKey, key.id, now=T0 + timedelta(minutes=5), every=timedelta(minutes=1))
        rows.touch(
            s, ApiKey, key.id, now=T0 + timedelta(minutes=5, seconds=30), every=timedelta(minutes=1)
        )
    with storage_db.session() as s:
        got = rows.get(s, ApiKey, key.id, workspace_id=ws.id)
        assert got is not None and got.last_used_at == T0 + timedelta(minutes=5)
        assert rows.count_by(s, ApiKey, workspace_id=ws.id, status="active") == 1
        assert rows.count_by(s, ApiKey, workspace_id=ws.id, status="revoked") == 0
        listed = rows.list_by(s, ApiKey, after=None, order="desc", limit=10, workspace_id=ws.id)
        assert [k.id for k in listed] == [key.id]


def test_audit_filters(storage_db: Database) -> None:
    with storage_db.session() as s:
        for i, (action, actor, target) in enumerate(
            [
                ("member.added", "usr_a", ("user", "usr_x")),
                ("member.removed", "usr_a", ("user", "usr_x")),
                ("api_key.created", "usr_b", ("api_key", "key_1")),
                ("api_key.revoked", "usr_b", ("api_key", "key_1")),
                ("workspace.updated", "usr_a", ("workspace", "ws_1")),
            ]
        ):
            repo.append_audit_event(
                s,
                workspace_id="ws_1",
                actor_type="user",
                actor_id=actor,
                actor_label=f"{actor}@example.com",
                action=action,
                target_type=target[0],
                target_id=target[1],
                summary=f"event {i}",
                metadata={"i": i, "nested": {"ok": True}},
                ip="203.0.113.7",
                user_agent="pytest",
                request_id=f"req_{i}",
                now=T0 + timedelta(minutes=i),
            )
        repo.append_audit_event(
            s,
            workspace_id=None,
            actor_type="system",
            actor_id=None,
            actor_label=None,
            action="user.created",
            target_type="user",
            target_id="usr_new",
            now=T0,
        )
        repo.append_audit_event(
            s,
            workspace_id="ws_2",
            actor_type="api_key",
            actor_id="key_9",
            actor_label="k",
            action="member.added",
            target_type="user",
            target_id="usr_x",
            now=T0,
        )

    def actions(**kw: Any) -> list[str]:
        with storage_db.session() as s:
            events = repo.list_audit_events(s, kw.pop("workspace_id", "ws_1"), order="asc", **kw)
            count = repo.count_audit_events(s, events[0].workspace_id if events else "ws_1", **kw)
            assert count == len(events)
            return [e.action for e in events]

    assert len(actions()) == 5
    assert actions(action="member.added") == ["member.added"]
    assert actions(actions=["api_key.created", "api_key.revoked"]) == [
        "api_key.created",
        "api_key.revoked",
    ]
    assert actions(actor_id="usr_a") == ["member.added", "member.removed", "workspace.updated"]
    assert actions(target_type="api_key", target_id="key_1") == [
        "api_key.created",
        "api_key.revoked",
    ]
    # `from_` is inclusive, `to` exclusive: the event at exactly T0+3min is left out.
    assert actions(from_=T0 + timedelta(minutes=1), to=T0 + timedelta(minutes=3)) == [
        "member.removed",
        "api_key.created",
    ]
    assert actions(actor_id="usr_a", actions=["member.added", "api_key.created"]) == [
        "member.added"
    ]
    with storage_db.session() as s:
        instance = repo.list_audit_events(s, None)
        assert [e.action for e in instance] == ["user.created"]
        assert repo.count_audit_events(s, None) == 1
        first = repo.list_audit_events(s, "ws_1", order="asc", limit=1)[0]
        assert first.metadata_ == {"i": 0, "nested": {"ok": True}}
        assert (first.ip, first.user_agent, first.request_id) == ("203.0.113.7", "pytest", "req_0")
        assert first.actor_label == "usr_a@example.com" and first.summary == "event 0"
        assert re.fullmatch(r"aud_[0-9A-Za-z]{24}", first.id)


def test_concurrent_demotions_keep_one_owner(storage_db: Database) -> None:
    a = _user(storage_db, "a@example.com")
    b = _user(storage_db, "b@example.com")
    ws = _workspace(storage_db, a.id)
    with storage_db.session() as s:
        repo.add_member(s, ws.id, b.id, "owner")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def demote(user_id: str) -> None:
        barrier.wait()
        try:
            with storage_db.session() as s:
                repo.update_member_role(s, ws.id, user_id, "admin")
            outcomes.append("ok")
        except repo.LastOwnerError:
            outcomes.append("last_owner")

    threads = [threading.Thread(target=demote, args=(u.id,)) for u in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["last_owner", "ok"]
    with storage_db.session() as s:
        assert repo.count_owners(s, ws.id) == 1


# --- keyset pagination ------------------------------------------------------------------------


def _walk(
    fetch: Callable[..., Sequence[T]], key: Callable[[T], repo.Cursor], order: str, limit: int
) -> list[T]:
    seen: list[T] = []
    after: repo.Cursor | None = None
    for _ in range(1000):
        rows = fetch(after=after, order=order, limit=limit)
        assert len(rows) <= limit + 1
        page = list(rows[:limit])
        seen.extend(page)
        if len(rows) <= limit:
            return seen
        after = key(page[-1])
    raise AssertionError("pagination did not terminate")


def _check_pagination(
    fetch: Callable[..., Sequence[T]],
    key: Callable[[T], repo.Cursor],
    expected_count: int,
) -> None:
    full_desc = list(fetch(after=None, order="desc", limit=10_000))
    full_asc = list(fetch(after=None, order="asc", limit=10_000))
    assert len(full_desc) == expected_count
    assert [key(r) for r in full_asc] == [key(r) for r in reversed(full_desc)]
    stamps = [key(r)[0] for r in full_asc]
    assert stamps == sorted(stamps)
    for order, full in (("desc", full_desc), ("asc", full_asc)):
        for limit in (1, 2, 3, 5, expected_count, expected_count + 1):
            walked = [key(r) for r in _walk(fetch, key, order, limit)]
            assert walked == [key(r) for r in full], (order, limit)
            assert len(set(walked)) == expected_count


def test_keyset_pagination_with_identical_timestamps(storage_db: Database) -> None:
    # Seven rows share one created_at; a few neighbours differ by a microsecond.
    stamps = [T0] * 7 + [T0 - timedelta(microseconds=1), T0 + timedelta(microseconds=1)] * 2
    n = len(stamps)
    with storage_db.session() as s:
        owner = repo.create_user(s, email="owner@example.com", name="O", now=T0)
        ws = repo.create_workspace(s, name="W", slug="w", owner_id=owner.id, now=T0)
        for i, at in enumerate(stamps):
            u = repo.create_user(s, email=f"u{i}@example.com", name=f"U{i}", now=at)
            repo.add_member(s, ws.id, u.id, "viewer", now=at)
            theirs = repo.create_workspace(s, name=f"W{i}", slug=f"w{i}", owner_id=u.id, now=at)
            repo.add_member(s, theirs.id, owner.id, "viewer", now=at)
            repo.create_pat(s, user_id=owner.id, name=f"t{i}", scopes=[], expires_at=T0, now=at)
            _api_key(
                s,
                workspace_id=ws.id,
                name=f"k{i}",
                role="viewer",
                scopes=[],
                created_by=owner.id,
                now=at,
            )
            repo.append_audit_event(
                s,
                workspace_id=ws.id,
                actor_type="user",
                actor_id=owner.id,
                actor_label=None,
                action="member.added",
                target_type="user",
                target_id=u.id,
                now=at,
            )

    with storage_db.session() as s:
        _check_pagination(
            lambda **kw: repo.list_users(s, **kw), lambda u: (u.created_at, u.id), n + 1
        )
        assert repo.count_users(s) == n + 1
        _check_pagination(
            lambda **kw: repo.list_members(s, ws.id, **kw),
            lambda m: (m.created_at, m.user_id),
            n + 1,
        )
        assert repo.count_members(s, ws.id) == n + 1
        _check_pagination(
            lambda **kw: repo.list_workspaces_for_user(s, owner.id, **kw),
            lambda wr: (wr[0].created_at, wr[0].id),
            n + 1,
        )
        assert repo.count_workspaces_for_user(s, owner.id) == n + 1
        _check_pagination(
            lambda **kw: repo.list_pats(s, owner.id, **kw), lambda p: (p.created_at, p.id), n
        )
        _check_pagination(
            lambda **kw: rows.list_by(s, ApiKey, workspace_id=ws.id, **kw),
            lambda k: (k.created_at, k.id),
            n,
        )
        _check_pagination(
            lambda **kw: repo.list_audit_events(s, ws.id, **kw),
            lambda e: (e.created_at, e.id),
            n,
        )
        # Filters and the cursor combine.
        _check_pagination(
            lambda **kw: repo.list_audit_events(
                s, ws.id, from_=T0, to=T0 + timedelta(microseconds=1), **kw
            ),
            lambda e: (e.created_at, e.id),
            7,
        )


def test_pagination_arguments_are_checked(storage_db: Database) -> None:
    with storage_db.session() as s:
        with pytest.raises(ValueError):
            repo.list_users(s, limit=0)
        with pytest.raises(ValueError):
            repo.list_users(s, order="sideways")  # type: ignore[arg-type]
