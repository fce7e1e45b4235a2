"""How the suite reads the spec's newer declarations, without a server.

References in request bodies (``x-gantry-resource``, at any depth) are made in the request's
workspace by the operation that creates the resource; a path parameter without a link is made
the same way; fresh strings for the partial-update probe follow ``format`` and ``pattern``; the
auth expectations of scoped credentials (``x-gantry-scope``, ``x-gantry-scope-role``) and of a
workspace named in a header; set-up steps (``given``, ``x-gantry-given``); the native error
envelopes (``x-gantry-error-format``); the field that names a list's items.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import pytest

from contract_tests import rules, spec
from contract_tests.checks import _native_error
from contract_tests.patches import new_string
from contract_tests.world import Caller, Scope, World

SCOPE = Scope(workspace_id="ws_" + "A" * 24, members={}, keys={})


@dataclass
class _Target:
    base_url: str = "http://127.0.0.1:9"


class _World(World):
    """A world that never sends: every resource it is asked for is named after its kind."""

    def __init__(self, document: spec.Document) -> None:
        super().__init__(_Target(), document)  # type: ignore[arg-type]
        self.made: list[tuple[str, str]] = []

    def reference(self, resource: str, scope: Scope) -> Any:
        self.made.append((resource, scope.workspace_id))
        return f"made-{resource}"


def _schema(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.fixture(scope="module")
def world() -> _World:
    return _World(spec.local_document())


def test_an_id_in_a_body_names_a_resource_made_in_the_scope(world: _World) -> None:
    body = {"name": "b", "provider_id": "prv_4Hk9Lm2Np7Qr1St6Uv3Wx8Yz", "weight": 1}
    assert world.with_references(body, _schema("BackendCreate"), SCOPE) == {
        "name": "b",
        "provider_id": "made-Provider",
        "weight": 1,
    }
    assert ("Provider", SCOPE.workspace_id) in world.made


def test_ids_nested_in_arrays_and_nullable_ids_are_made_too(world: _World) -> None:
    route = {"name": "r", "model_patterns": ["*"], "backends": [{"backend_id": "bke_x"}]}
    filled = world.with_references(route, _schema("RouteCreate"), SCOPE)
    assert filled["backends"] == [{"backend_id": "made-Backend"}]
    agent = {"key": "a", "model": "m", "prompt_id": "prm_x"}
    assert world.with_references(agent, _schema("AgentCreate"), SCOPE)["prompt_id"] == (
        "made-Prompt"
    )
    steps = {"key": "w", "steps": [{"key": "s", "type": "agent", "agent_id": "agt_x"}]}
    filled = world.with_references(steps, _schema("WorkflowCreate"), SCOPE)
    assert filled["steps"][0]["agent_id"] == "made-Agent"
    assert world.with_references({"prompt_id": None}, _schema("AgentCreate"), SCOPE) == {
        "prompt_id": None
    }


def test_a_resource_is_made_by_its_create_and_named_by_its_own_id() -> None:
    document = spec.local_document()
    assert document.creator_of("Provider") == ("createProvider", "$response.body#/id")
    assert document.creator_of("Agent") == ("createAgent", "$response.body#/id")
    run = document.creator_of("Run")
    assert run is not None and run[1] == "$response.body#/id"
    assert document.creator_of("CacheEntry") is None  # only a data-plane call makes one


def test_a_path_parameter_without_a_link_is_made_by_the_create_of_its_resource() -> None:
    raw = copy.deepcopy(dict(spec.local_document().raw))
    for item in raw["paths"].values():
        for definition in item.values():
            if not isinstance(definition, dict):
                continue  # the path item's parameters
            for response in (definition.get("responses") or {}).values():
                if isinstance(response, dict):
                    response.pop("links", None)
    unlinked = _World(spec.Document(raw))
    assert unlinked.producer(spec.by_id("getAgent"), "agent_id") == (
        "createAgent",
        "$response.body#/id",
    )
    assert unlinked.producer(spec.by_id("getCacheEntry"), "cache_key") is None


@pytest.mark.parametrize(
    ("component", "fits"),
    [
        ("BaseUrl", r"^https://patched-[a-z0-9-]+\.example\.com/v1$"),
        ("Email", r"^[^@]+@example\.com$"),
        ("Timestamp", r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"),
        ("Slug", r"^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$"),
        ("ProviderId", r"^prv_[0-9A-Za-z]{24}$"),
        ("CacheKey", r"^[0-9a-f]{64}$"),
    ],
)
def test_a_patched_string_follows_its_format_and_pattern(
    world: _World, component: str, fits: str
) -> None:
    schema = dict(world.doc.resolve(_schema(component)))
    values = {new_string(world, schema) for _ in range(3)}
    assert len(values) == 3  # fresh each time
    for value in values:
        assert re.fullmatch(fits, value), value
        assert re.search(str(schema.get("pattern", "")), value), value


@dataclass
class _Caller:
    kind: str
    role: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)
    superadmin: bool = False
    invalid_code: str | None = None


EVERY_SCOPE = frozenset({"read", "run", "write", "admin", "gateway"})
KEY_SCOPES = frozenset({"gateway", "sdk"})


@pytest.mark.parametrize(
    ("caller", "outcome"),
    [
        (_Caller("pat", "operator", EVERY_SCOPE), "pass"),
        (_Caller("pat", "viewer", EVERY_SCOPE), "403 insufficient_role"),
        (_Caller("pat", "owner", frozenset({"admin"})), "403 scope_denied"),
        (_Caller("pat", None, EVERY_SCOPE, superadmin=True), "404 not_found"),
        (_Caller("api_key", "operator", KEY_SCOPES), "pass"),
        (_Caller("api_key", "viewer", KEY_SCOPES), "403 insufficient_role"),
        (_Caller("api_key", "admin"), "403 scope_denied"),
        (_Caller("api_key", None, KEY_SCOPES), "404 not_found"),
        (_Caller("session", "owner"), "403 scope_denied"),
        (_Caller("none"), "401 unauthenticated"),
    ],
)
def test_a_scoped_credential_needs_its_scope_then_its_role_where_it_acts(
    caller: _Caller, outcome: str
) -> None:
    for operation_id in ("getModels", "createChatCompletion", "createMessage"):
        assert str(spec.expected(spec.by_id(operation_id), caller)) == outcome


@pytest.mark.parametrize(
    ("caller", "outcome"),
    [
        (_Caller("pat", "viewer", EVERY_SCOPE), "pass"),
        (_Caller("api_key", "viewer", KEY_SCOPES), "pass"),
        (_Caller("pat", None, EVERY_SCOPE), "404 not_found"),
        (_Caller("pat", None, EVERY_SCOPE, superadmin=True), "404 not_found"),
        (_Caller("api_key", None, KEY_SCOPES), "404 not_found"),
    ],
)
def test_a_workspace_named_in_a_header_answers_404_to_a_stranger(
    caller: _Caller, outcome: str
) -> None:
    op = spec.by_id("fetchSdkPrompt")
    assert spec.local_document().workspace_header(op) == "X-Workspace-Id"
    assert str(spec.expected(op, caller)) == outcome


def test_the_world_names_the_workspace_in_the_header_for_every_caller(world: _World) -> None:
    from contract_tests.world import Request

    request = Request(
        op=spec.by_id("getModels"),
        caller=Caller("operator_api_key", "api_key"),
        path={},
        query={},
        body=None,
        scope=SCOPE,
    )
    assert request.headers() == {"X-Workspace-Id": SCOPE.workspace_id}
    assert Request(spec.by_id("getProvider"), request.caller, {}, {}, None, SCOPE).headers() == {}


def test_set_up_steps_are_read_from_preconditions_and_operations() -> None:
    document = spec.local_document()
    declared = rules.declared(document)
    in_use = declared["precondition deleteProvider provider_in_use"]
    assert [(g.operation_id, dict(g.body)) for g in in_use.given] == [
        ("createBackend", {"provider_id": "$request.path.provider_id"})
    ]
    taken = declared["precondition createProvider already_exists"]
    assert taken.body == {"name": "taken"} and dict(taken.given[0].body) == {"name": "taken"}
    for code in ("backend_in_use", "has_active_runs", "no_changes"):
        assert any(k.startswith("precondition ") and k.endswith(code) for k in declared), code
    steps = rules.given_steps(document)["createChatCompletion"]
    assert [g.operation_id for g in steps] == ["createProvider", "createBackend", "createRoute"]
    assert steps[1].body["provider_id"] == "$response.body#/id"


class _Response:
    def __init__(self, status: int, body: Any, headers: dict[str, str]) -> None:
        self.status_code = status
        self.content = json.dumps(body).encode()
        self.headers = {k.lower(): [v] for k, v in headers.items()}


JSON = {"Content-Type": "application/json", "X-Request-Id": "req_1"}
OPENAI = {
    "error": {"message": "No key.", "type": "authentication_error", "param": None, "code": None}
}
ANTHROPIC = {"type": "error", "error": {"type": "authentication_error", "message": "No key."}}


@pytest.mark.parametrize(
    ("native", "body", "headers", "ok"),
    [
        ("openai", OPENAI, JSON, True),
        ("anthropic", {**ANTHROPIC, "request_id": "req_1"}, JSON, True),
        ("anthropic", {**ANTHROPIC, "request_id": "req_2"}, JSON, False),
        ("anthropic", OPENAI, JSON, False),
        ("openai", {"type": "about:blank", "status": 401, "code": "unauthenticated"}, JSON, False),
        ("openai", OPENAI, {**JSON, "Content-Type": "application/problem+json"}, False),
        ("openai", OPENAI, {"Content-Type": "application/json"}, False),
    ],
)
def test_a_native_error_envelope_is_checked_as_declared(
    native: str, body: Any, headers: dict[str, str], ok: bool
) -> None:
    response = _Response(401, body, headers)
    if ok:
        _native_error(response, 401, native)
    else:
        with pytest.raises(AssertionError):
            _native_error(response, 401, native)


def test_the_operations_declare_their_envelopes() -> None:
    document = spec.local_document()
    assert document.error_format(spec.by_id("createMessage")) == "anthropic"
    assert document.error_format(spec.by_id("getModels")) == "openai"
    assert document.error_format(spec.by_id("getProvider")) is None


def test_a_list_item_is_named_by_the_field_that_names_its_resource() -> None:
    document = spec.local_document()
    assert document.item_identity(spec.by_id("listCacheEntries")) == "key"
    assert document.item_identity(spec.by_id("listProviders")) == "id"
