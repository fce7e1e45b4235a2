"""Fixtures for the API tests: an app per test, a spec-validating client, and builders.

Every response that goes through ``Api`` is checked against ``spec/openapi.yaml`` with
openapi-core (the reference oracle, independent of the server's own validators); a response
that breaks the contract fails the test. Responses with no operation in the spec (unknown
route, wrong method) must still be a valid ``Problem`` with ``X-Request-Id``.

The API tests run on SQLite and, when ``GANTRY_TEST_DATABASE_URL`` is set, on that PostgreSQL
database too (a fresh schema per test, dropped afterwards). An unreachable PostgreSQL fails the
tests rather than skipping them.
"""

from __future__ import annotations

import os

os.environ.setdefault("GANTRY_ARGON2_PROFILE", "fast")  # before the server hashes anything

import itertools
import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from openapi_core import Config as OpenAPIConfig
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIResponse
from openapi_core.datatypes import RequestParameters
from openapi_core.deserializing.media_types.util import json_loads
from openapi_core.templating.paths.exceptions import OperationNotFound, PathNotFound
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from werkzeug.datastructures import Headers, ImmutableMultiDict
from werkzeug.test import TestResponse

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "spec" / "openapi.yaml"
PG_URL_ENV = "GANTRY_TEST_DATABASE_URL"
BOOTSTRAP_TOKEN = "pat_" + "Bootstrap0Token0For0Tests0Only0123456789"[:40]
ORIGIN = "http://localhost"
CSRF_HEADERS = {"X-Requested-With": "XMLHttpRequest", "Origin": ORIGIN}
PASSWORD = "correct-horse-battery-staple"
ALL_PAT_SCOPES = ("read", "run", "write", "admin", "gateway")

assert len(BOOTSTRAP_TOKEN) == 44

# ── the oracle ──────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="session")
def spec_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="session")
def openapi() -> OpenAPI:
    # openapi-core decodes only application/json by default; problem+json is JSON too.
    config = OpenAPIConfig(
        extra_media_type_deserializers={"application/problem+json": json_loads},
    )
    return OpenAPI.from_file_path(str(SPEC_PATH), config=config)


@pytest.fixture(scope="session")
def problem_validator(spec_document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    schema = {
        "$ref": "#/components/schemas/Problem",
        "components": spec_document["components"],
    }
    return jsonschema.Draft202012Validator(schema)


class ContractViolation(AssertionError):
    """A response that breaks the spec."""


@dataclass
class Oracle:
    openapi: OpenAPI
    problem: jsonschema.Draft202012Validator

    def check(self, response: TestResponse, sent_body: bytes | None = None) -> None:
        request = _SentRequest.of(response, sent_body)
        try:
            self.openapi.validate_response(request, WerkzeugOpenAPIResponse(response))
        except (PathNotFound, OperationNotFound):
            self._check_unrouted(response)
        except Exception as exc:
            raise ContractViolation(
                f"{response.request.method} {response.request.full_path} -> {response.status}: "
                f"response breaks the spec: {exc!r}\n{_describe(exc)}\nbody: "
                f"{response.get_data(as_text=True)[:2000]}"
            ) from exc
        # openapi-core has checked the media type the spec documents; an error the spec
        # documents in another envelope (the gateway's native ones) is checked by its schema.
        if response.status_code >= 400 and response.mimetype == "application/problem+json":
            self.check_problem(response)

    def _check_unrouted(self, response: TestResponse) -> None:
        assert response.status_code in (404, 405), f"unrouted request answered {response.status}"
        self.check_problem(response)

    def check_problem(self, response: TestResponse) -> None:
        where = f"{response.request.method} {response.request.path}"
        assert response.mimetype == "application/problem+json", (where, response.mimetype)
        body = response.get_json()
        errors = list(self.problem.iter_errors(body))
        if errors:
            raise ContractViolation(f"{where}: not a Problem: {errors[0].message}; {body}")
        request_id = response.headers.get("X-Request-Id")
        assert request_id, f"{where}: no X-Request-Id"
        assert body["request_id"] == request_id, (where, body["request_id"], request_id)
        assert body["status"] == response.status_code


@dataclass
class _SentRequest:
    """The request as openapi-core sees it (the werkzeug request's stream is spent by now)."""

    host_url: str
    path: str
    method: str
    body: bytes | None
    content_type: str
    parameters: RequestParameters

    @classmethod
    def of(cls, response: TestResponse, body: bytes | None) -> _SentRequest:
        sent = response.request
        return cls(
            host_url=sent.host_url,
            path=sent.path,
            method=sent.method.lower(),
            body=body,
            content_type=sent.content_type or "application/octet-stream",
            parameters=RequestParameters(
                query=ImmutableMultiDict(sent.args),
                header=Headers(sent.headers),
                cookie=sent.cookies,
            ),
        )


def _describe(exc: BaseException) -> str:
    parts = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        details = getattr(current, "schema_errors", None)
        if details:
            parts.extend(str(e.message) for e in details)
        current = current.__cause__ or current.__context__
    return "; ".join(parts)


@pytest.fixture(scope="session")
def oracle(openapi: OpenAPI, problem_validator: jsonschema.Draft202012Validator) -> Oracle:
    return Oracle(openapi, problem_validator)


# ── the client ──────────────────────────────────────────────────────────────────────────────

_NO_BODY: Any = object()


class Api:
    """A test client that validates every response against the spec.

    ``Api`` carries one credential: none, a bearer secret, or a cookie session (its own cookie
    jar, with the CSRF headers added to every request unless ``csrf=False``).
    """

    def __init__(
        self,
        app: Flask,
        oracle: Oracle,
        *,
        bearer: str | None = None,
        cookies: bool = False,
        csrf: bool = True,
    ) -> None:
        self.app = app
        self.oracle = oracle
        self.bearer = bearer
        self.csrf = csrf
        self.client: FlaskClient = app.test_client(use_cookies=cookies)

    def with_bearer(self, secret: str) -> Api:
        return Api(self.app, self.oracle, bearer=secret)

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = _NO_BODY,
        data: bytes | str | None = None,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str | None = None,
        csrf: bool | None = None,
        remote_addr: str | None = None,
        validate: bool = True,
        expect: int | None = None,
        code: str | None = None,
    ) -> TestResponse:
        sent: dict[str, str] = {}
        if self.bearer is not None:
            sent["Authorization"] = f"Bearer {self.bearer}"
        if (self.csrf if csrf is None else csrf) and self.bearer is None:
            sent.update(CSRF_HEADERS)
        sent.update(headers or {})
        kwargs: dict[str, Any] = {"headers": sent}
        body: bytes | None = None
        if json is not _NO_BODY:
            body = _dumps(json).encode()
            kwargs["data"] = body
            kwargs["content_type"] = content_type or "application/json"
        elif data is not None:
            body = data.encode() if isinstance(data, str) else data
            kwargs["data"] = body
            if content_type is not None:
                kwargs["content_type"] = content_type
        if query is not None:
            kwargs["query_string"] = {k: _query_value(v) for k, v in query.items()}
        if remote_addr is not None:
            kwargs["environ_base"] = {"REMOTE_ADDR": remote_addr}
        url = path if path.startswith("/api/") else "/api/v1" + path
        response = self.client.open(url, method=method, **kwargs)
        if validate:
            self.oracle.check(response, body)
        if expect is not None:
            check_status(response, expect, code)
        return response

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("DELETE", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self.request("PUT", path, **kwargs)


def _dumps(value: Any) -> str:
    return json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else v)


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return rfc3339(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return value


def rfc3339(stamp: datetime) -> str:
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def check_status(response: TestResponse, status: int, code: str | None = None) -> Any:
    """Assert the status (and problem code); return the JSON body."""
    body = response.get_json(silent=True)
    assert response.status_code == status, (
        f"{response.request.method} {response.request.path}: expected {status}, got "
        f"{response.status}: {body if body is not None else response.get_data(as_text=True)[:500]}"
    )
    if code is not None:
        assert body is not None and body.get("code") == code, (code, body)
    return body


# ── apps and databases ──────────────────────────────────────────────────────────────────────


def _backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV, "").strip() else ["sqlite"]


@pytest.fixture(params=_backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for one test: a SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 't.db'}"
        return
    from server.storage.db import normalize_url

    base = os.environ[PG_URL_ENV].strip()
    schema = f"gantry_api_{secrets.token_hex(6)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:  # unreachable or misconfigured: fail, never skip
        admin.dispose()
        pytest.fail(f"{PG_URL_ENV} is set but PostgreSQL is not usable: {exc}", pytrace=False)
    url = normalize_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(database_url: str, tmp_path: Path) -> Iterator[AppFactory]:
    """Build an app over this test's database; keyword arguments override the Config."""
    apps: list[Flask] = []

    # Imported here, not at module level: the generator's tests share this conftest and must
    # not depend on the server (or the generated package) being importable.
    from server.app import create_app
    from server.config import Config

    def factory(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {
            "database_url": database_url,
            "var_dir": tmp_path,
            "bootstrap_token": BOOTSTRAP_TOKEN,
            "secret_key": "test",
            # The suite registers many users from one address; the limit has its own test.
            "login_rate_per_minute": 100_000,
            # The test client's origin (Flask's test host), the one CSRF_HEADERS send.
            "public_url": ORIGIN,
        }
        settings.update(overrides)
        app = create_app(Config(**settings))
        app.testing = True
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["gantry"].database.dispose()


@pytest.fixture
def app(make_app: AppFactory) -> Flask:
    return make_app()


@pytest.fixture
def api(app: Flask, oracle: Oracle) -> Api:
    """An anonymous client."""
    return Api(app, oracle)


@pytest.fixture
def admin(app: Flask, oracle: Oracle) -> Api:
    """The bootstrap superadmin, by its personal access token (every scope)."""
    return Api(app, oracle, bearer=BOOTSTRAP_TOKEN)


# ── builders ────────────────────────────────────────────────────────────────────────────────


@dataclass
class Account:
    """A registered user and their signed-in cookie client."""

    id: str
    email: str
    name: str
    password: str
    session: Api
    body: dict[str, Any] = field(default_factory=dict)


class Gantry:
    """Builders for the objects most tests need, all made through the API itself."""

    _counter = itertools.count(1)
    bootstrap_token = BOOTSTRAP_TOKEN
    password = PASSWORD
    csrf_headers = CSRF_HEADERS

    @staticmethod
    def stamp(delta: timedelta = timedelta(0)) -> str:
        """``now + delta`` as RFC 3339."""
        return rfc3339(datetime.now(UTC) + delta)

    def __init__(self, app: Flask, oracle: Oracle, spec: dict[str, Any]) -> None:
        self.app = app
        self.oracle = oracle
        self.spec = spec
        self.anon = Api(app, oracle)
        self.admin = Api(app, oracle, bearer=BOOTSTRAP_TOKEN)

    # -- direct database access, for set-ups the API cannot make and for "nothing written" checks

    def db(self) -> AbstractContextManager[Session]:
        """One committed unit of work on the app's database."""
        database = self.app.extensions["gantry"].database
        session: AbstractContextManager[Session] = database.session()
        return session

    def count(self, model: type[Any], *where: Any) -> int:
        with self.db() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

    def counts(self) -> dict[str, int]:
        """Row counts of every table (to prove a failed request wrote nothing), but the rate
        limit's hits, which count failed attempts by design."""
        from server.storage.models import Base

        with self.db() as session:
            return {
                table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
                for table in Base.metadata.sorted_tables
                if table.name != "rate_limit_hits"
            }

    # -- the operation table and the spec

    @staticmethod
    def operations() -> tuple[Any, ...]:
        from generated.operations import OPERATIONS

        return tuple(OPERATIONS)

    @staticmethod
    def concrete_path(operation: Any, **ids: str) -> str:
        """The operation's path with ``{name}`` replaced by ``ids[name]`` (or a sample id)."""
        samples = {
            "workspace_id": "ws_" + "W" * 24,
            "user_id": "usr_" + "U" * 24,
            "token_id": "tok_" + "T" * 24,
            "key_id": "key_" + "K" * 24,
        }
        samples.update(ids)
        for parameter in operation.parameters:  # any other id: its schema's example
            if parameter.location == "path" and parameter.name not in samples:
                schema = _resolved(parameter.schema)
                examples = schema.get("examples") or [schema.get("example")]
                if examples[0] is not None:
                    samples[parameter.name] = str(examples[0])
                else:
                    samples[parameter.name] = "1" if schema.get("type") == "integer" else "x"
        path: str = operation.path
        for name, value in samples.items():
            path = path.replace("{" + name + "}", value)
        assert "{" not in path, path
        return path

    def example_body(self, operation: Any) -> Any:
        """The spec's example request body of ``operation`` (every one carries an example)."""
        method = operation.method.lower()
        relative = operation.path.removeprefix("/api/v1")
        content = self.spec["paths"][relative][method]["requestBody"]["content"]
        return content["application/json"]["example"]

    # -- pagination

    @staticmethod
    def walk(
        client: Api, path: str, *, limit: int, order: str | None = None, **query: Any
    ) -> list[dict[str, Any]]:
        """Follow ``next_cursor`` to the end; every page must hold at most ``limit`` items."""
        items: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": limit, **query}
        if order is not None:
            params["order"] = order
        for _ in range(1000):
            page = client.get(path, query=params, expect=200).json
            assert len(page["items"]) <= limit
            items.extend(page["items"])
            if page["next_cursor"] is None:
                return items
            assert len(page["items"]) == limit, "a non-final page must be full"
            params = {**params, "cursor": page["next_cursor"]}
        raise AssertionError("pagination did not end")

    def unique(self, stem: str) -> str:
        return f"{stem}{next(self._counter)}"

    def cookie_client(self, *, csrf: bool = True) -> Api:
        return Api(self.app, self.oracle, cookies=True, csrf=csrf)

    def bearer(self, secret: str) -> Api:
        return Api(self.app, self.oracle, bearer=secret)

    def user(self, name: str | None = None, *, password: str = PASSWORD) -> Account:
        """Register a user; the returned account's ``session`` is signed in."""
        handle = self.unique(name or "user")
        email = f"{handle}@example.com"
        client = self.cookie_client()
        body = check_status(
            client.post(
                "/auth/register",
                json={"email": email, "name": handle.title(), "password": password},
            ),
            201,
        )
        return Account(body["id"], email, body["name"], password, client, body)

    def login(self, account: Account) -> Api:
        """A second, independent session of ``account``."""
        client = self.cookie_client()
        check_status(
            client.post("/auth/login", json={"email": account.email, "password": account.password}),
            200,
        )
        return client

    def pat(
        self,
        account: Account,
        scopes: tuple[str, ...] = ALL_PAT_SCOPES,
        *,
        days: int = 30,
        name: str = "test token",
    ) -> str:
        body = check_status(
            account.session.post(
                "/tokens",
                json={
                    "name": name,
                    "scopes": list(scopes),
                    "expires_at": rfc3339(datetime.now(UTC) + timedelta(days=days)),
                },
            ),
            201,
        )
        token: str = body["token"]
        return token

    def workspace(self, owner: Account | Api, slug: str | None = None) -> dict[str, Any]:
        client = owner.session if isinstance(owner, Account) else owner
        slug = slug or self.unique("ws-")
        body: dict[str, Any] = check_status(
            client.post("/workspaces", json={"name": slug.title(), "slug": slug}), 201
        )
        return body

    def member(self, workspace_id: str, owner: Account | Api, role: str) -> Account:
        """A new user, added to the workspace with ``role`` by ``owner``."""
        account = self.user(role)
        client = owner.session if isinstance(owner, Account) else owner
        check_status(
            client.post(
                f"/workspaces/{workspace_id}/members", json={"user_id": account.id, "role": role}
            ),
            201,
        )
        return account

    def api_key(
        self,
        workspace_id: str,
        by: Account | Api,
        role: str = "operator",
        scopes: tuple[str, ...] = (),
        name: str = "test key",
    ) -> dict[str, Any]:
        client = by.session if isinstance(by, Account) else by
        body: dict[str, Any] = check_status(
            client.post(
                f"/workspaces/{workspace_id}/api-keys",
                json={"name": name, "role": role, "scopes": list(scopes)},
            ),
            201,
        )
        return body


@pytest.fixture
def gantry(app: Flask, oracle: Oracle, spec_document: dict[str, Any]) -> Gantry:
    return Gantry(app, oracle, spec_document)


@pytest.fixture
def gantry_for(oracle: Oracle, spec_document: dict[str, Any]) -> Callable[[Flask], Gantry]:
    """Builders over another app (one made with ``make_app(**overrides)``)."""

    def build(app: Flask) -> Gantry:
        return Gantry(app, oracle, spec_document)

    return build


def _resolved(schema: Any) -> Any:
    """``schema`` with its ``$ref`` to a generated component followed."""
    import json
    from importlib import resources

    import generated

    ref = schema.get("$ref", "") if isinstance(schema, dict) else ""
    if not ref:
        return schema or {}
    components = json.loads(resources.files(generated).joinpath("schemas.json").read_text())
    return components["components"]["schemas"][ref.rsplit("/", 1)[-1]]


def native_error_operations() -> frozenset[str]:
    """operationIds whose errors keep another API's envelope (``x-gantry-error-format``: the
    gateway's data plane), not problem+json."""
    import json
    from importlib import resources

    import generated
    from server.runtime.error_formats import error_formats

    document = json.loads(resources.files(generated).joinpath("openapi.json").read_text())
    return frozenset(error_formats(document))
