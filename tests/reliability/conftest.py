"""Fixtures for the reliability tests: a scene built straight in storage, and a race runner.

The races run on SQLite and, with ``GANTRY_TEST_DATABASE_URL``, on PostgreSQL (the
``database_url`` fixture of ``tests/conftest.py``: a fresh schema per test). Each request of a
race goes through the whole app (admission, handler, commit) on a thread of its own, and every
thread waits at one barrier before it sends, so the requests meet in the database.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from contract_tests.live import LiveServer
from server.storage import repositories as repo
from server.storage.models import Membership, User
from server.storage.types import utcnow
from tests.conftest import AppFactory
from tests.reliability.edge import backends, edge_server

# Every race ends within this (a request that hangs fails the test instead of the run).
RACE_TIMEOUT_S = 30.0
ROUNDS = 40


@dataclass(frozen=True)
class Person:
    """A user and the secret of a personal access token with every scope."""

    id: str
    token: str


@dataclass(frozen=True)
class Answer:
    """What one request of a race answered."""

    status: int
    code: str | None


class Scene:
    """Users, workspaces and memberships written straight to the app's database (setting a
    scene through the API would cost each round seconds of password hashing)."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.database = app.extensions["gantry"].database
        self._count = 0

    def db(self) -> Any:
        """One committed unit of work."""
        return self.database.session(write=True)

    def person(self, *, superadmin: bool = False, stamped: bool = True) -> Person:
        """A user with a PAT. The token is stamped as just used (unless ``stamped=False``), so
        the requests of a race write no usage stamp: the race is between the rules under test,
        not two stamps."""
        self._count += 1
        with self.db() as s:
            user = repo.create_user(
                s, email=f"p{self._count}@example.com", name="P", is_superadmin=superadmin
            )
            row, secret = repo.create_pat(
                s,
                user_id=user.id,
                name="race",
                scopes=["read", "run", "write", "admin"],
                expires_at=utcnow() + timedelta(days=1),
            )
            row.last_used_at = utcnow() if stamped else None
        return Person(user.id, secret)

    def workspace(self, members: dict[Person, str]) -> str:
        """A workspace with these members and roles (the first one creates it)."""
        self._count += 1
        first, *rest = members
        with self.db() as s:
            ws = repo.create_workspace(
                s, name="Race", slug=f"race-{self._count}", owner_id=first.id
            )
            s.execute(
                update(Membership)
                .where(Membership.workspace_id == ws.id)
                .values(role=members[first])
            )
            for person in rest:
                repo.add_member(s, ws.id, person.id, members[person])
        return ws.id

    def only_superadmins(self, *people: Person) -> None:
        """Make these the instance's only active superadmins."""
        ids = [p.id for p in people]
        with self.db() as s:
            s.execute(update(User).values(is_superadmin=User.id.in_(ids), status="active"))

    def owners(self, workspace_id: str) -> int:
        with self.db() as s:
            return repo.count_owners(s, workspace_id)

    def active_superadmins(self) -> int:
        with self.db() as s:
            return repo.count_superadmins(s, active_only=True)

    def role(self, workspace_id: str, person: Person) -> str | None:
        with self.db() as s:
            return repo.get_member_role(s, workspace_id, person.id)

    def users(self) -> int:
        with self.db() as s:
            return int(s.scalar(select(func.count()).select_from(User)) or 0)

    def session(self) -> Session:
        """A session for ad-hoc reads (close it)."""
        session: Session = self.database.sessionmaker()
        return session

    def request(self, person: Person, method: str, path: str, body: Any = None) -> Answer:
        """One request through the whole app, on a client of its own."""
        client = self.app.test_client()
        kwargs: dict[str, Any] = {"headers": {"Authorization": f"Bearer {person.token}"}}
        if body is not None:
            kwargs["json"] = body
        response = client.open("/api/v1" + path, method=method, **kwargs)
        problem = response.get_json(silent=True) if response.status_code >= 400 else None
        return Answer(response.status_code, problem.get("code") if problem else None)


@dataclass(frozen=True)
class Send:
    """One request of a race: who sends what."""

    person: Person
    method: str
    path: str
    body: Any = None


@pytest.fixture
def scene(make_app: AppFactory) -> Scene:
    return Scene(make_app())


@pytest.fixture
def race(scene: Scene) -> Iterator[Callable[..., list[Answer]]]:
    """``race(Send(...), Send(...))``: send the requests at once, released together by a
    barrier; their answers in order. One that has not answered within ``RACE_TIMEOUT_S`` fails
    the test."""
    pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="race")

    def run(*sends: Send) -> list[Answer]:
        barrier = threading.Barrier(len(sends), timeout=RACE_TIMEOUT_S)

        def released(send: Send) -> Answer:
            barrier.wait()
            return scene.request(send.person, send.method, send.path, send.body)

        futures = [pool.submit(released, send) for send in sends]
        return [future.result(timeout=RACE_TIMEOUT_S) for future in futures]

    yield run
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module", params=backends())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A live ``gantry serve`` with the default edge settings, one per module and backend (a
    module that needs other settings, as the slow-client tests do, defines its own)."""
    with edge_server(request.param, tmp_path_factory.mktemp(f"edge-{request.param}")) as live:
        yield live
