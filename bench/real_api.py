"""The real API on SQLite: three operations over HTTP, and where their time goes.

A fresh SQLite database gets the bootstrap superadmin, one workspace they own and 999 more
members (1,000 in all). Then, served by gunicorn (2 workers) from ``server.app:create_app()``:

* ``list_members``: ``GET /api/v1/workspaces/{id}/members`` (a page of 50 of the 1,000);
* ``create_api_key``: ``POST /api/v1/workspaces/{id}/api-keys``;
* ``get_me``: ``GET /api/v1/auth/me``;

each loaded with the same bounded load as the contract bench (requests per second, p50, p99).

The breakdown comes from a profile, not a guess: the same requests run in-process under
cProfile, and every function's own time (``tottime``) is attributed to the part of the stack it
belongs to: database (SQLAlchemy, the sqlite3 driver, storage), validation (parameters, body,
compiled schemas, pydantic), auth (credentials, roles, secret hashing), serialisation (JSON
encoding, response building, the handlers' serialisers) and the rest (Flask, werkzeug,
handlers' own logic). Profiling inflates Python-level time, so these are shares, not timings.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import statistics
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.over_http import Server, load
from bench.requests import BenchRequest, wsgi_caller

TOKEN = "pat_" + "BenchBootstrapToken0123456789abcdefghijk"[:40]
SECRET = "bench-secret-key"
MEMBERS = 1000
OPERATIONS = ("list_members", "create_api_key", "get_me")
EXPECTED = {"list_members": 200, "create_api_key": 201, "get_me": 200}


def _env(var_dir: Path) -> dict[str, str]:
    return {
        "GANTRY_VAR_DIR": str(var_dir),
        "GANTRY_DATABASE_URL": f"sqlite:///{var_dir / 'gantry.db'}",
        "GANTRY_SECRET_KEY": SECRET,
        "GANTRY_BOOTSTRAP_TOKEN": TOKEN,
    }


def _config(var_dir: Path) -> Any:
    from server.config import Config

    env = _env(var_dir)
    return Config(
        database_url=env["GANTRY_DATABASE_URL"],
        var_dir=var_dir,
        bootstrap_token=TOKEN,
        secret_key=SECRET,
    )


def seed(var_dir: Path) -> str:
    """A migrated database with 1,000 members in one workspace; returns the workspace id."""
    import logging

    from server.app import create_app
    from server.security import new_id
    from server.storage.models import Membership, User

    logging.disable(logging.CRITICAL)
    app = create_app(_config(var_dir))
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response = client.post(
        "/api/v1/workspaces", json={"name": "Bench workspace", "slug": "bench"}, headers=auth
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    workspace_id: str = response.get_json()["id"]
    state = app.extensions["gantry"]
    now = datetime.now(UTC)
    with state.database.session() as session:
        users = []
        for n in range(MEMBERS - 1):
            stamp = now + timedelta(microseconds=n)
            users.append(
                User(
                    id=new_id("usr_"),
                    email=f"member{n}@bench.example",
                    name=f"Member {n}",
                    password_hash=None,
                    is_superadmin=False,
                    status="active",
                    created_at=stamp,
                    updated_at=stamp,
                )
            )
        session.add_all(users)
        session.flush()  # users before their memberships (no ORM relationship orders them)
        session.add_all(
            Membership(
                workspace_id=workspace_id,
                user_id=user.id,
                role="viewer",
                created_at=user.created_at,
                updated_at=user.created_at,
            )
            for user in users
        )
    state.database.dispose()
    return workspace_id


def requests_for(workspace_id: str) -> dict[str, BenchRequest]:
    auth = ("Authorization", f"Bearer {TOKEN}")
    body = json.dumps({"name": "bench key", "role": "viewer"}).encode()
    base = f"/api/v1/workspaces/{workspace_id}"
    return {
        "list_members": BenchRequest("list_members", "GET", f"{base}/members", "", (auth,), b""),
        "create_api_key": BenchRequest(
            "create_api_key",
            "POST",
            f"{base}/api-keys",
            "",
            (auth, ("Content-Type", "application/json")),
            body,
        ),
        "get_me": BenchRequest("get_me", "GET", "/api/v1/auth/me", "", (auth,), b""),
    }


# ── the profile ─────────────────────────────────────────────────────────────────────────────

CATEGORIES = ("validation", "auth", "database", "serialisation", "framework and handlers")


def _category(filename: str, function: str) -> str:
    """Which part of the stack a function (by its file, or a builtin by its name) belongs to."""
    path = filename.replace("\\", "/")
    if filename == "~":  # a builtin: judge by its qualified name
        if "sqlite3" in function:
            return "database"
        if "jsonschema_rs" in function or "pydantic" in function or "re.Pattern" in function:
            return "validation"
        if "_hashlib" in function or "hmac" in function or "openssl" in function:
            return "auth"
        if "_json" in function or "encode" in function or "orjson" in function:
            return "serialisation"
        return "framework and handlers"
    if "/sqlalchemy/" in path or "/server/storage/" in path or "sqlite3" in path:
        return "database"
    if any(
        part in path
        for part in (
            "/server/runtime/params.py",
            "/server/runtime/body.py",
            "/server/runtime/body_bytes.py",
            "/server/runtime/schemas.py",
            "/pydantic/",
            "/pydantic_core/",
            "/jsonschema_rs/",
        )
    ):
        return "validation"
    if any(
        part in path
        for part in (
            "/server/runtime/auth.py",
            "/server/domain/credentials.py",
            "/server/domain/roles.py",
            "/server/security.py",
            "hashlib",
            "hmac",
        )
    ) or function in ("authenticate", "authorize"):
        return "auth"
    if (
        "/json/" in path
        or "/server/runtime/present.py" in path
        or function
        in (
            "render",
            "encode_json",
            "problem_response",
            "problem_body",
            "encode_problem",
            "json_default",
        )
        or "/werkzeug/wrappers/response.py" in path
        or "/werkzeug/sansio/response.py" in path
    ):
        return "serialisation"
    return "framework and handlers"


def profile(app: Any, req: BenchRequest, count: int) -> dict[str, float]:
    """Shares of own time per category over ``count`` in-process requests."""
    call = wsgi_caller(app, req)
    for _ in range(20):
        call()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        call()
    profiler.disable()
    stats = pstats.Stats(profiler)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        own = row[2]
        if "bench/requests.py" in filename or "cProfile" in filename:
            continue
        totals[_category(filename, function)] += own
    whole = sum(totals.values()) or 1.0
    return {name: round(100 * value / whole, 1) for name, value in totals.items()}


# ── the run ─────────────────────────────────────────────────────────────────────────────────


def run(
    *, duration: float, connections: int, rounds: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Seed, serve, load, profile; the ``real_api`` section of latest.json."""
    import logging

    from server.app import create_app

    with tempfile.TemporaryDirectory(prefix="gantry-bench-api-") as folder:
        var_dir = Path(folder)
        log(f"real API: seeding {MEMBERS} members in SQLite")
        workspace_id = seed(var_dir)
        reqs = requests_for(workspace_id)
        server = Server(app="server.app:create_app()", env=_env(var_dir))
        server.start(reqs["get_me"], 200)
        results: dict[str, list[Any]] = {name: [] for name in OPERATIONS}
        try:
            for name in OPERATIONS:  # warm-up
                load(server.port, reqs[name], duration=1, connections=connections, expected=0)
            for r in range(rounds):
                for name in OPERATIONS:
                    results[name].append(
                        load(
                            server.port,
                            reqs[name],
                            duration=duration,
                            connections=connections,
                            expected=EXPECTED[name],
                        )
                    )
                log(f"real API: round {r + 1}/{rounds}")
            rss = server.worker_rss_mib()
        finally:
            server.stop()

        os.environ.update(_env(var_dir))
        logging.disable(logging.CRITICAL)
        app = create_app(_config(var_dir))
        breakdown = {name: profile(app, reqs[name], 300) for name in OPERATIONS}
        app.extensions["gantry"].database.dispose()

    def median(name: str, attr: str) -> float:
        return round(statistics.median(getattr(r, attr) for r in results[name]), 2)

    return {
        "operations": {
            name: {
                "rps": median(name, "rps"),
                "p50_ms": median(name, "p50_ms"),
                "p99_ms": median(name, "p99_ms"),
                "errors": sum(r.errors for r in results[name]),
            }
            for name in OPERATIONS
        },
        "breakdown_pct": breakdown,
        "worker_rss_mib": round(rss, 1),
        "members": MEMBERS,
    }
