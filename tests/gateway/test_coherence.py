"""Compiled routes stay coherent across processes: two apps on one database (as two workers or
two instances run), each keeping its own compiled routes. A change made through either one is
used by the other's very next gateway call; no change, no recompiling. On SQLite, and on
PostgreSQL with ``GANTRY_TEST_DATABASE_URL``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from server.domain import gateway_config
from server.domain.gateway_config import CompiledRoutes
from server.domain.unit import unit_of_work
from tests.conftest import Api, AppFactory, Gantry
from tests.gateway.fakes import FakeUpstream


@dataclass
class Node:
    """One app (a worker, an instance) and its clients."""

    app: Flask
    admin: Api
    key: str

    @property
    def routes(self) -> CompiledRoutes:
        compiled: CompiledRoutes = self.app.extensions["gantry"].gateway_routes
        return compiled

    def chat(self, model: str) -> tuple[int, dict[str, Any]]:
        response = self.admin.client.post(
            "/api/v1/llm/v1/chat/completions",
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
            headers={"Authorization": f"Bearer {self.key}"},
        )
        return response.status_code, response.get_json()

    def model_of(self, model: str) -> str:
        """The upstream model that answered a call for ``model``."""
        status, body = self.chat(model)
        assert status == 200, body
        return str(body["model"])


@dataclass
class Cluster:
    one: Node
    two: Node
    workspace_id: str
    loads: list[str]  # the workspaces whose routes were compiled, call by call

    def post(self, node: Node, path: str, body: dict[str, Any]) -> dict[str, Any]:
        made: dict[str, Any] = node.admin.post(
            f"/workspaces/{self.workspace_id}{path}", json=body, expect=201
        ).json
        return made


@pytest.fixture
def cluster(
    make_app: AppFactory, gantry_for: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    settings = {"gateway_requests_per_minute": 100_000, "gateway_burst": 10_000}
    first: Gantry = gantry_for(make_app(**settings))
    second: Gantry = gantry_for(make_app(**settings))
    ws = first.workspace(first.admin)["id"]
    key = first.api_key(ws, first.admin, scopes=("gateway",))["key"]
    loads: list[str] = []
    compile_routes = gateway_config.load_routes

    def counted(uow: Any, workspace_id: str, **kwargs: Any) -> Any:
        loads.append(workspace_id)
        return compile_routes(uow, workspace_id, **kwargs)

    monkeypatch.setattr(gateway_config, "load_routes", counted)
    yield Cluster(Node(first.app, first.admin, key), Node(second.app, second.admin, key), ws, loads)
    for app in (first.app, second.app):
        app.extensions["gantry"].gateway.queue.close()


def local_backend(cluster: Cluster, node: Node, upstream_model: str) -> str:
    provider = cluster.post(node, "/providers", {"name": f"p-{upstream_model}", "type": "local"})
    backend = cluster.post(
        node,
        "/gateway/backends",
        {"name": upstream_model, "provider_id": provider["id"], "upstream_model": upstream_model},
    )
    return str(backend["id"])


def test_a_change_through_one_app_is_used_by_the_others_next_call(cluster: Cluster) -> None:
    one, two = cluster.one, cluster.two
    first = local_backend(cluster, one, "first-model")
    route = cluster.post(
        one,
        "/gateway/routes",
        {"name": "chat", "model_patterns": ["chat-*"], "backends": [{"backend_id": first}]},
    )
    assert one.model_of("chat-a") == two.model_of("chat-a") == "first-model"

    # Nothing changed: both apps answer from what they compiled.
    compiled = len(cluster.loads)
    for _ in range(3):
        assert one.model_of("chat-a") == two.model_of("chat-a") == "first-model"
    assert len(cluster.loads) == compiled

    # A backend changed through one app: the other's next call uses it.
    one.admin.patch(
        f"/gateway/backends/{first}", json={"upstream_model": "renamed-model"}, expect=200
    )
    assert two.model_of("chat-a") == "renamed-model"
    assert one.model_of("chat-a") == "renamed-model"

    # A route changed through the other app, the first sees it.
    two.admin.patch(
        f"/gateway/routes/{route['id']}", json={"model_patterns": ["talk-*"]}, expect=200
    )
    status, body = one.chat("chat-a")
    assert status == 404 and body["error"]["code"] == "model_not_found"
    assert one.model_of("talk-a") == "renamed-model"

    # A new backend, and the route moved onto it.
    second = local_backend(cluster, two, "second-model")
    two.admin.patch(
        f"/gateway/routes/{route['id']}", json={"backends": [{"backend_id": second}]}, expect=200
    )
    assert one.model_of("talk-a") == "second-model"

    # A backend disabled, then the route deleted.
    one.admin.patch(f"/gateway/backends/{second}", json={"enabled": False}, expect=200)
    status, body = two.chat("talk-a")
    assert status == 503 and body["error"]["code"] == "no_backend"
    one.admin.delete(f"/gateway/routes/{route['id']}", expect=204)
    status, body = two.chat("talk-a")
    assert status == 404 and body["error"]["code"] == "model_not_found"


def test_a_rotated_provider_key_is_sent_by_the_other_app_at_once(
    cluster: Cluster, openai_upstream: FakeUpstream
) -> None:
    one, two = cluster.one, cluster.two
    provider = cluster.post(
        one,
        "/providers",
        {
            "name": "upstream",
            "type": "openai_compatible",
            "base_url": openai_upstream.base_url,
            "api_key": "sk-before",
        },
    )
    backend = cluster.post(
        one,
        "/gateway/backends",
        {"name": "up", "provider_id": provider["id"], "upstream_model": "gpt-up"},
    )
    cluster.post(
        one,
        "/gateway/routes",
        {"name": "up", "model_patterns": ["gpt-*"], "backends": [{"backend_id": backend["id"]}]},
    )
    assert one.model_of("gpt-x") == two.model_of("gpt-x") == "gpt-up"
    two.admin.patch(f"/providers/{provider['id']}", json={"api_key": "sk-after"}, expect=200)
    assert one.model_of("gpt-x") == two.model_of("gpt-x") == "gpt-up"
    sent = [r.headers.get("Authorization") for r in openai_upstream.requests]
    assert sent == ["Bearer sk-before"] * 2 + ["Bearer sk-after"] * 2


def test_compiled_routes_are_kept_for_a_bounded_number_of_workspaces(
    cluster: Cluster, gantry_for: Any
) -> None:
    state = cluster.one.app.extensions["gantry"]
    admin = gantry_for(cluster.one.app)
    workspaces = [admin.workspace(admin.admin)["id"] for _ in range(3)]
    compiled = CompiledRoutes(state.secret_box, capacity=2)
    with unit_of_work(state.database.read_sessionmaker) as uow:
        for workspace_id in [*workspaces, workspaces[2]]:
            assert compiled.current(uow, workspace_id) == []
    assert len(compiled) == 2
    # The least recently used went first: the first workspace is compiled again.
    assert cluster.loads == [*workspaces]
    with unit_of_work(state.database.read_sessionmaker) as uow:
        compiled.current(uow, workspaces[2])
        compiled.current(uow, workspaces[0])
    assert cluster.loads == [*workspaces, workspaces[0]]
