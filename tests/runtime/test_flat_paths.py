"""Authorisation on flat item paths (``/notes/{note_id}``), from the spec's declarations.

The notes of ``tests/contract_suite/notes.yaml`` are served beside Gantry's own operations:
``NoteId`` names a ``Note`` (``x-gantry-resource``) and a workspace owns each note
(``x-gantry-owner``), so the runtime finds the note's workspace through the owner lookup the
app registers and applies the rules of ``/workspaces/{workspace_id}`` paths there, before the
handler runs. ``Ownership`` itself refuses at start-up a spec it could not enforce.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from server.runtime.errors import NotImplementedYet
from server.runtime.ownership import Ownership, OwnershipError
from server.storage.workspaces import lock_workspace
from tests.conftest import AppFactory, Gantry
from tests.contract_suite.notes_app import Notes, notes_package

# ── the app ───────────────────────────────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return notes_package(tmp_path_factory.mktemp("notes"))


@dataclass
class World:
    """A workspace with a member of each role the tests need, an outsider, and one note."""

    app: Flask
    gantry: Gantry
    workspace_id: str
    pats: dict[str, str]  # who -> an every-scope personal access token
    note_id: str

    def client(self, secret: str) -> FlaskClient:
        client = self.app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {secret}"
        return client

    def send(self, who: str, method: str, path: str, json: Any = None) -> tuple[int, Any]:
        secret = self.pats.get(who, who)
        response = self.client(secret).open(f"/api/v1{path}", method=method, json=json)
        return response.status_code, response.get_json(silent=True)


@pytest.fixture
def world(
    make_app: AppFactory, package: ModuleType, gantry_for: Callable[[Flask], Gantry]
) -> World:
    app = make_app()
    Notes(package).extend(app)
    gantry = gantry_for(app)
    owner = gantry.user("owner")
    workspace_id = gantry.workspace(owner)["id"]
    accounts = {
        "owner": owner,
        "viewer": gantry.member(workspace_id, owner, "viewer"),
        "editor": gantry.member(workspace_id, owner, "editor"),
        "outsider": gantry.user("outsider"),
    }
    gantry.workspace(accounts["outsider"])  # the owner of a workspace of their own
    pats = {who: gantry.pat(account) for who, account in accounts.items()}
    pats["owner_read"] = gantry.pat(owner, ("read",))
    made = World(app, gantry, workspace_id, pats, "")
    status, note = made.send("editor", "POST", f"/workspaces/{workspace_id}/notes", {"title": "x"})
    assert status == 201, note
    made.note_id = note["id"]
    return made


def _unknown_note() -> str:
    return "note_" + secrets.token_hex(12)[:24]


# ── the rules of the owning workspace ─────────────────────────────────────────────────────────


def test_a_member_with_the_role_is_served(world: World) -> None:
    note = f"/notes/{world.note_id}"
    assert world.send("viewer", "GET", note)[0] == 200
    status, body = world.send("editor", "PATCH", note, {"summary": "kept"})
    assert (status, body["summary"], body["workspace_id"]) == (200, "kept", world.workspace_id)
    assert world.send("owner", "POST", f"{note}/publish")[0] == 200


@pytest.mark.parametrize(
    ("method", "body"), [("GET", None), ("PATCH", {"title": "taken"}), ("DELETE", None)]
)
def test_a_non_member_gets_404_as_if_the_note_did_not_exist(
    world: World, method: str, body: Any
) -> None:
    status, problem = world.send("outsider", method, f"/notes/{world.note_id}", body)
    assert (status, problem["code"]) == (404, "not_found")
    assert world.send("viewer", "GET", f"/notes/{world.note_id}")[1]["title"] == "x"


@pytest.mark.parametrize("who", ["owner", "outsider", "viewer"])
def test_an_unknown_id_gets_404(world: World, who: str) -> None:
    status, problem = world.send(who, "PATCH", f"/notes/{_unknown_note()}", {"title": "y"})
    assert (status, problem["code"]) == (404, "not_found")


def test_a_role_too_low_gets_403(world: World) -> None:
    status, problem = world.send("viewer", "PATCH", f"/notes/{world.note_id}", {"title": "y"})
    assert (status, problem["code"]) == (403, "insufficient_role")


def test_a_token_whose_scopes_are_too_low_gets_403(world: World) -> None:
    note = f"/notes/{world.note_id}"
    status, problem = world.send("owner_read", "PATCH", note, {"title": "y"})
    assert (status, problem["code"]) == (403, "scope_denied")
    assert world.send("owner_read", "GET", note)[0] == 200


def test_api_keys_act_in_their_own_workspace_only(world: World) -> None:
    owner = world.gantry.bearer(world.pats["owner"])
    editor_key = world.gantry.api_key(world.workspace_id, owner, "editor")["key"]
    viewer_key = world.gantry.api_key(world.workspace_id, owner, "viewer")["key"]
    outsider = world.gantry.bearer(world.pats["outsider"])
    foreign = world.gantry.workspace(outsider)["id"]
    foreign_key = world.gantry.api_key(foreign, outsider, "admin")["key"]
    note = f"/notes/{world.note_id}"
    assert world.send(editor_key, "PATCH", note, {"title": "by key"})[0] == 200
    assert world.send(viewer_key, "PATCH", note, {"title": "y"})[1]["code"] == "insufficient_role"
    assert world.send(foreign_key, "GET", note)[0] == 404


def test_a_write_takes_the_owning_workspaces_lock(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked: list[str] = []

    def recording(db: Any, workspace_id: str) -> Any:
        locked.append(workspace_id)
        return lock_workspace(db, workspace_id)

    monkeypatch.setattr("server.runtime.dispatch.lock_workspace", recording)
    assert world.send("viewer", "GET", f"/notes/{world.note_id}")[0] == 200
    assert locked == []
    assert world.send("editor", "PATCH", f"/notes/{world.note_id}", {"title": "z"})[0] == 200
    assert locked == [world.workspace_id]


# ── what the runtime refuses to start with ────────────────────────────────────────────────────


def _document(
    path: str, *, min_role: str = "viewer", param_schema: Any = None, owner: str = "workspace"
) -> dict[str, Any]:
    name = path.rsplit("{", 1)[-1].rstrip("}") if "{" in path else "x"
    return {
        "paths": {
            path: {
                "parameters": [{"$ref": "#/components/parameters/Param"}],
                "get": {"operationId": "readWidget", "x-gantry-min-role": min_role},
            }
        },
        "components": {
            "parameters": {
                "Param": {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "schema": param_schema or {"$ref": "#/components/schemas/WidgetId"},
                }
            },
            "schemas": {
                "WidgetId": {"type": "string", "x-gantry-resource": "Widget"},
                "Widget": {"type": "object", "x-gantry-owner": owner},
            },
        },
    }


def _widget_owner(db: Any, widget_id: str) -> str | None:
    return "ws_" + "W" * 24 if widget_id == "wid_1" else None


def test_a_flat_item_path_is_found_through_the_declarations() -> None:
    ownership = Ownership(_document("/widgets/{widget_id}"), {"Widget": _widget_owner})
    item = ownership.item("readWidget")
    assert item is not None and (item.parameter, item.resource) == ("widget_id", "Widget")
    db: Any = None  # the lookup of this test reads no database
    assert item.workspace_of(db, {"widget_id": "wid_1"}) == "ws_" + "W" * 24


def test_the_resource_may_be_declared_on_the_parameters_own_schema() -> None:
    inline = {"type": "string", "x-gantry-resource": "Widget"}
    ownership = Ownership(
        _document("/widgets/{widget_id}", param_schema=inline), {"Widget": _widget_owner}
    )
    assert ownership.item("readWidget") is not None


def test_a_path_that_names_its_workspace_is_left_to_it() -> None:
    document = _document("/workspaces/{workspace_id}/widgets/{widget_id}")
    document["paths"]["/workspaces/{workspace_id}/widgets/{widget_id}"]["get"]["parameters"] = [
        {"name": "workspace_id", "in": "path", "required": True, "schema": {"type": "string"}}
    ]
    assert Ownership(document, {}).item("readWidget") is None


def test_a_user_owned_resource_is_not_a_workspaces() -> None:
    document = _document("/widgets/{widget_id}", min_role="session", owner="user")
    assert Ownership(document, {}).item("readWidget") is None


@pytest.mark.parametrize(
    ("document", "lookups", "complaint"),
    [
        (
            _document("/widgets/{widget_id}", min_role="any"),
            {"Widget": _widget_owner},
            "must be a workspace role",
        ),
        (
            _document("/widgets/{widget_id}", param_schema={"type": "string"}),
            {"Widget": _widget_owner},
            "names no workspace",
        ),
        (
            _document("/widgets/{widget_id}", param_schema={"x-gantry-resource": "Gadget"}),
            {},
            "'Gadget', which is not a schema",
        ),
    ],
    ids=["not-a-workspace-role", "no-workspace", "unknown-resource"],
)
def test_a_spec_the_runtime_cannot_enforce_stops_start_up(
    document: dict[str, Any], lookups: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(OwnershipError, match=complaint):
        Ownership(document, lookups)


def test_a_resource_without_an_owner_lookup_yet_is_refused_closed() -> None:
    """Its operations scaffolded and its storage still to come: 501, never the handler."""
    ownership = Ownership(_document("/widgets/{widget_id}"), {})
    item = ownership.item("readWidget")
    assert item is not None and ownership.unregistered() == {"Widget"}
    db: Any = None
    with pytest.raises(NotImplementedYet, match="No owner lookup is registered for Widget"):
        item.workspace_of(db, {"widget_id": "wid_1"})


def test_gantrys_own_spec_starts_with_each_flat_item_path_found(make_app: AppFactory) -> None:
    from generated.operations import OPERATIONS
    from server.vocabulary import WORKSPACE_ROLES

    ownership = make_app().extensions["gantry"].ownership
    flat = [
        op.operation_id
        for op in OPERATIONS
        if op.min_role in WORKSPACE_ROLES and "{workspace_id}" not in op.path
    ]
    assert all(ownership.item(operation_id) is not None for operation_id in flat)
    assert ownership.item("revokeApiKey") is None  # its path names its workspace
    assert ownership.item("revokeToken") is None  # a user's
