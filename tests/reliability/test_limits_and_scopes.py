"""Auth limits and credential rules that must hold across workers and for every credential.

* the auth endpoints' per-IP limit is kept in a store every worker shares (the database, or Redis
  when configured): an exact sliding window, race-free, that forgets what has left it; against a
  real ``gantry serve`` with two workers, 30 wrong passwords from one address get exactly ten
  401 answers and twenty 429 answers with ``Retry-After``;
* a personal access token's scopes cap every operation it can call, instance-level ones included;
* a password change ends the user's other sessions (an admin's reset: all of them, and their
  tokens);
* the CSRF allow-list comes from configuration, never from the Host header;
* ``GET /auth/me`` embeds a bounded number of memberships.

The stores run on SQLite, on PostgreSQL when ``GANTRY_TEST_DATABASE_URL`` is set and on Redis when
``GANTRY_TEST_REDIS_URL`` is set; either set but unreachable fails the tests rather than skipping.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contract_tests.live import live_server
from contract_tests.pg import PostgresUnavailable, temporary_schema
from server.config import Config
from server.runtime.errors import RateLimited
from server.runtime.ratelimit import RateLimiter, RateLimitStore, rate_limit_store
from server.runtime.ratelimit_redis import RedisRateLimitStore
from server.storage.db import Database
from server.storage.models import AuditEvent, RateLimitHit
from server.storage.rate_limits import SqlRateLimitStore
from tests.conftest import native_error_operations

PG_URL_ENV = "GANTRY_TEST_DATABASE_URL"
REDIS_URL_ENV = "GANTRY_TEST_REDIS_URL"
PAT_SCOPES = ("read", "run", "write", "admin", "gateway")
LIVE_TOKEN = "pat_" + "Reliability0Limits0And0Scopes0Token01234"[:40]


def _pg_url() -> str:
    return os.environ.get(PG_URL_ENV, "").strip()


def _redis_url() -> str:
    return os.environ.get(REDIS_URL_ENV, "").strip()


def _redis_client() -> Any:
    """A client of the test Redis; an unreachable one fails the test."""
    import redis

    client = redis.Redis.from_url(_redis_url(), socket_timeout=5, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"{REDIS_URL_ENV} is set but Redis is not usable: {exc}", pytrace=False)
    return client


def _migrated(stack: ExitStack, backend: str, tmp_path: Path) -> Database:
    """A migrated database on ``backend`` that ``stack`` disposes of (and drops, on PostgreSQL)."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'limits.db'}"
    else:
        try:
            url = stack.enter_context(temporary_schema(_pg_url()))
        except PostgresUnavailable as exc:
            pytest.fail(str(exc), pytrace=False)
    database = Database(url)
    stack.callback(database.dispose)
    database.migrate()
    return database


def _sql_backends() -> list[str]:
    return ["sqlite", "postgresql"] if _pg_url() else ["sqlite"]


@pytest.fixture(params=_sql_backends())
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlRateLimitStore]:
    with ExitStack() as stack:
        database = _migrated(stack, request.param, tmp_path)
        yield SqlRateLimitStore(database.write_engine)


def _redis_store(stack: ExitStack) -> RedisRateLimitStore:
    """A store on the test Redis under a prefix of its own, whose keys ``stack`` deletes."""
    client = _redis_client()
    prefix = f"gantry-test:{secrets.token_hex(6)}:"

    def clean() -> None:
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        client.close()

    stack.callback(clean)
    return RedisRateLimitStore(client, prefix=prefix)


@pytest.fixture
def redis_store() -> Iterator[RedisRateLimitStore]:
    if not _redis_url():
        pytest.skip(f"{REDIS_URL_ENV} is not set")
    with ExitStack() as stack:
        yield _redis_store(stack)


@pytest.fixture(params=_sql_backends() + (["redis"] if _redis_url() else []))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RateLimitStore]:
    """Each shared store: the SQL one on each configured database, and Redis if configured."""
    with ExitStack() as stack:
        if request.param == "redis":
            yield _redis_store(stack)
        else:
            yield SqlRateLimitStore(_migrated(stack, request.param, tmp_path).write_engine)


# ── the stores ──────────────────────────────────────────────────────────────────────────────


def test_admits_the_limit_then_says_when_the_oldest_hit_leaves(store: RateLimitStore) -> None:
    for now in (100.0, 110.0, 120.0):
        assert store.take("k", 3, 60.0, now) is None
    assert store.take("k", 3, 60.0, 130.0) == pytest.approx(30.0)
    assert store.take("k", 3, 60.0, 159.5) == pytest.approx(0.5)


def test_the_window_slides_one_hit_at_a_time(store: RateLimitStore) -> None:
    for now in (100.0, 110.0, 120.0):
        assert store.take("k", 3, 60.0, now) is None
    assert store.take("k", 3, 60.0, 160.5) is None  # the hit at 100 has left the window
    assert store.take("k", 3, 60.0, 161.0) == pytest.approx(9.0)  # 110 is the oldest now
    assert store.take("k", 3, 60.0, 170.5) is None


def test_refused_hits_are_not_counted(store: RateLimitStore) -> None:
    assert store.take("k", 2, 60.0, 0.0) is None
    assert store.take("k", 2, 60.0, 1.0) is None
    for now in range(2, 60):
        assert store.take("k", 2, 60.0, float(now)) is not None
    # Had the refusals counted, the window would still be full of them.
    assert store.take("k", 2, 60.0, 60.5) is None
    assert store.take("k", 2, 60.0, 61.5) is None


def test_keys_are_counted_apart(store: RateLimitStore) -> None:
    assert store.take("auth:10.0.0.1", 1, 60.0, 0.0) is None
    assert store.take("auth:10.0.0.1", 1, 60.0, 1.0) is not None
    assert store.take("auth:10.0.0.2", 1, 60.0, 1.0) is None


def test_concurrent_hits_never_pass_the_limit(store: RateLimitStore) -> None:
    """Eight threads at the same instant, 40 hits in all, bounded: exactly 10 counted."""
    barrier = threading.Barrier(8, timeout=30)

    def hits() -> list[float | None]:
        barrier.wait()
        return [store.take("k", 10, 60.0, 1000.0) for _ in range(5)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for batch in pool.map(lambda _: hits(), range(8)) for r in batch]
    assert sum(r is None for r in results) == 10
    assert all(r == pytest.approx(60.0) for r in results if r is not None)


def test_the_sql_store_deletes_hits_that_left_their_window(
    sql_store: SqlRateLimitStore,
) -> None:
    sql_store.sweep_every = 0.0  # sweep on every counted hit
    for n in range(20):
        assert sql_store.take(f"ip-{n}", 5, 60.0, 0.0) is None
    assert sql_store.take("ip-0", 5, 60.0, 30.0) is None
    assert _hit_rows(sql_store) == 21
    # Long after: one hit leaves only itself behind, its own key's and the quiet keys' gone.
    assert sql_store.take("ip-0", 5, 60.0, 1000.0) is None
    assert _hit_rows(sql_store) == 1


def _hit_rows(sql_store: SqlRateLimitStore) -> int:
    with sql_store.engine.connect() as connection:
        return int(connection.scalar(select(func.count()).select_from(RateLimitHit)) or 0)


def test_redis_keys_expire_with_their_window(redis_store: RedisRateLimitStore) -> None:
    assert redis_store.take("k", 3, 60.0, time.time()) is None
    ttl_ms = redis_store.client.pttl(redis_store.prefix + "k")
    assert 0 < ttl_ms <= 60_000


def test_the_store_is_redis_when_configured_else_the_database(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'pick.db'}")
    try:
        assert isinstance(rate_limit_store(Config(), database), SqlRateLimitStore)
        picked = rate_limit_store(Config(redis_url="redis://127.0.0.1:6379/0"), database)
        assert isinstance(picked, RedisRateLimitStore)
        picked.close()
    finally:
        database.dispose()


def test_two_limiters_on_one_store_share_the_count(sql_store: SqlRateLimitStore) -> None:
    """Two workers' limiters over the same store: 10 a minute in all, not 10 each."""
    now = [500.0]
    first, second = (RateLimiter(sql_store, 10, clock=lambda: now[0]) for _ in range(2))
    for n in range(10):
        (first if n % 2 else second).hit("10.0.0.1")
    for limiter in (first, second):
        with pytest.raises(RateLimited) as caught:
            limiter.hit("10.0.0.1")
        assert caught.value.headers["Retry-After"] == "60"


# ── a real server with two workers ──────────────────────────────────────────────────────────


def _live_setups() -> list[str]:
    setups = ["sqlite"]
    if _pg_url():
        setups.append("postgresql")
    if _redis_url():
        setups.append("redis")
    return setups


@pytest.mark.parametrize("setup", _live_setups())
def test_thirty_wrong_passwords_from_one_address_across_two_workers(
    setup: str, tmp_path: Path
) -> None:
    """30 wrong passwords from one address, three at a time over fresh connections (so both
    workers answer): exactly 10 answered 401, the other 20 answered 429 with Retry-After."""
    environ: dict[str, str] = {}
    database_url = ""
    with ExitStack() as stack:
        if setup == "postgresql":
            try:
                database_url = stack.enter_context(temporary_schema(_pg_url()))
            except PostgresUnavailable as exc:
                pytest.fail(str(exc), pytrace=False)
        if setup == "redis":
            _redis_client().close()  # reachable, or fail here
            environ["GANTRY_REDIS_URL"] = _redis_url()
        server = stack.enter_context(
            live_server(tmp_path, LIVE_TOKEN, database_url=database_url, environ=environ)
        )
        # A loopback address of this test's own: the limit is per address, and the shared
        # store (Redis, above all) may hold other runs' hits for 127.0.0.1.
        source = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        port = int(server.base_url.rsplit(":", 1)[1])

        def attempt(n: int) -> tuple[int, str | None, str | None]:
            connection = http.client.HTTPConnection(
                "127.0.0.1", port, timeout=60, source_address=(source, 0)
            )
            try:
                body = json.dumps({"email": f"nobody{n}@example.com", "password": "wrong-one"})
                connection.request(
                    "POST", "/api/v1/auth/login", body, {"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                problem = json.loads(response.read() or b"{}")
                return response.status, response.getheader("Retry-After"), problem.get("code")
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=3) as pool:
            answers = list(pool.map(attempt, range(30)))

    assert Counter(status for status, _, _ in answers) == {401: 10, 429: 20}, answers
    for status, retry_after, code in answers:
        if status == 429:
            assert code == "rate_limited"
            assert retry_after is not None and 1 <= int(retry_after) <= 60, retry_after
        else:
            assert code == "invalid_credentials"


# ── token scopes on every operation ─────────────────────────────────────────────────────────


@pytest.mark.parametrize("scope", PAT_SCOPES)
def test_scopes_cap_the_operations_any_user_may_call(gantry: Any, scope: str) -> None:
    """Reading needs a scope that reads (read and up); creating a workspace needs write or
    admin; a gateway-only token calls none of them."""
    account = gantry.user()
    pat = gantry.bearer(gantry.pat(account, (scope,)))
    reads = scope != "gateway"
    writes = scope in ("write", "admin")
    for path, query in (
        ("/auth/me", None),
        ("/status", None),
        ("/workspaces", None),
        ("/users/lookup", {"email": account.email}),
    ):
        if reads:
            pat.get(path, query=query, expect=200)
        else:
            pat.get(path, query=query, expect=403, code="scope_denied")
    before = gantry.counts()
    body = {"name": "Scoped", "slug": gantry.unique("scoped-")}
    if writes:
        pat.post("/workspaces", json=body, expect=201)
    else:
        pat.post("/workspaces", json=body, expect=403, code="scope_denied")
        assert gantry.counts() == before


GATEWAY = native_error_operations()


def test_every_instance_level_operation_checks_the_scopes(gantry: Any) -> None:
    """Every operation a PAT can call outside a workspace: a gateway-only token is refused, and
    a read-only token is refused every change."""
    account = gantry.user()
    gateway_only = gantry.bearer(gantry.pat(account, ("gateway",)))
    read_only = gantry.bearer(gantry.pat(account, ("read",)))
    checked = []
    for op in gantry.operations():
        if op.min_role not in ("any", "user") or "{" in op.path or op.operation_id in GATEWAY:
            continue  # the data plane is what a gateway token is for (tests/gateway)
        body = gantry.example_body(op) if op.request_body is not None else None
        for client, refused in ((gateway_only, True), (read_only, op.method != "GET")):
            if not refused:
                continue
            kwargs = {"json": body} if body is not None else {}
            query = {"email": account.email} if op.operation_id == "lookupUser" else None
            response = client.request(op.method, op.path, query=query, **kwargs)
            assert response.status_code == 403, (op.operation_id, response.get_json())
            assert response.get_json()["code"] == "scope_denied", op.operation_id
        checked.append(op.operation_id)
    assert {"getMe", "getStatus", "listWorkspaces", "createWorkspace", "lookupUser"} <= set(checked)


# ── password changes end credentials ────────────────────────────────────────────────────────


def test_changing_ones_password_ends_the_other_sessions(gantry: Any) -> None:
    account = gantry.user()
    elsewhere = gantry.login(account)
    token = gantry.bearer(gantry.pat(account))
    account.session.patch(
        "/auth/me",
        json={"password": "analytical-engine-1843", "current_password": account.password},
        expect=200,
    )
    elsewhere.get("/auth/me", expect=401)
    account.session.get("/auth/me", expect=200)  # the session that changed it stays
    token.get("/auth/me", expect=200)  # tokens stay: the user reviews them under /tokens
    with gantry.db() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user.updated")).one()
        assert event.metadata_["sessions_ended"] == 1


def test_an_admin_password_reset_ends_every_session_and_token(gantry: Any) -> None:
    account = gantry.user()
    elsewhere = gantry.login(account)
    tokens = [gantry.bearer(gantry.pat(account)) for _ in range(2)]
    gantry.admin.patch(
        f"/admin/users/{account.id}", json={"password": "reset-by-the-admin-1"}, expect=200
    )
    for session in (account.session, elsewhere):
        session.get("/auth/me", expect=401)
    for token in tokens:
        token.get("/auth/me", expect=401, code="token_revoked")
    fresh = gantry.cookie_client()
    fresh.post(
        "/auth/login",
        json={"email": account.email, "password": "reset-by-the-admin-1"},
        expect=200,
    )
    with gantry.db() as session:
        event = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "user.updated", AuditEvent.target_id == account.id
            )
        ).one()
        assert event.metadata_["sessions_ended"] == 2
        assert event.metadata_["tokens_revoked"] == 2


def test_an_admin_rename_ends_nothing(gantry: Any) -> None:
    account = gantry.user()
    token = gantry.bearer(gantry.pat(account))
    gantry.admin.patch(f"/admin/users/{account.id}", json={"name": "Renamed"}, expect=200)
    account.session.get("/auth/me", expect=200)
    token.get("/auth/me", expect=200)


# ── CSRF: the allow-list is configuration ───────────────────────────────────────────────────


def test_a_forged_host_does_not_make_an_origin_allowed(gantry: Any) -> None:
    account = gantry.user()
    cookie = account.session.client.get_cookie("session")
    assert cookie is not None
    before = gantry.counts()
    # The page at the attacker's origin reaches the server under the attacker's host name (DNS
    # rebinding, or a proxy that passes Host on): Origin and Host agree, and neither is ours.
    gantry.anon.post(  # no cookie jar: the client's jar would not send a localhost cookie
        "/workspaces",
        json={"name": "Forged", "slug": "forged-host"},
        csrf=False,
        headers={
            "Cookie": f"session={cookie.value}",
            "Host": "attacker.example",
            "X-Requested-With": "XMLHttpRequest",
            "Origin": "http://attacker.example",
        },
        expect=403,
        code="csrf_failed",
    )
    assert gantry.counts() == before


def test_the_default_allow_list_serves_a_local_browser() -> None:
    assert Config().allowed_origins() == {"http://127.0.0.1:8080", "http://localhost:8080"}
    assert Config(host="0.0.0.0", port=9000).allowed_origins() == {
        "http://127.0.0.1:9000",
        "http://localhost:9000",
    }
    assert Config(host="10.1.2.3", port=80).allowed_origins() == {"http://10.1.2.3"}


def test_the_public_url_and_extra_origins_make_the_allow_list() -> None:
    config = Config.from_env(
        {
            "GANTRY_PUBLIC_URL": "HTTPS://Gantry.Example.com:443/api/v1/",
            "GANTRY_CSRF_ORIGINS": "https://app.example.com/, http://tools.example:8443",
        }
    )
    assert config.allowed_origins() == {
        "https://gantry.example.com",
        "https://app.example.com",
        "http://tools.example:8443",
    }


# ── /auth/me is bounded ─────────────────────────────────────────────────────────────────────


def test_me_embeds_the_first_fifty_memberships_and_says_there_are_more(gantry: Any) -> None:
    account = gantry.user()
    writer = gantry.bearer(gantry.pat(account, ("write",)))
    created = [
        writer.post(
            "/workspaces", json={"name": f"W{n}", "slug": gantry.unique("me-")}, expect=201
        ).json["id"]
        for n in range(50)
    ]
    me = account.session.get("/auth/me", expect=200).json
    assert [m["workspace_id"] for m in me["memberships"]] == created  # oldest first
    assert me["memberships_truncated"] is False
    created.append(
        writer.post("/workspaces", json={"name": "W50", "slug": gantry.unique("me-")}).json["id"]
    )
    me = account.session.get("/auth/me", expect=200).json
    assert [m["workspace_id"] for m in me["memberships"]] == created[:50]
    assert me["memberships_truncated"] is True
    # The complete list is the paginated one.
    listed = gantry.walk(account.session, "/workspaces", limit=200, order="asc")
    assert [w["id"] for w in listed] == created
