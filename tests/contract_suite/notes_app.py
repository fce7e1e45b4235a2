"""Gantry with one resource added: the notes of ``notes.yaml``, served by test handlers.

``Notes.extend(app)`` adds the notes' routes to a Gantry app (``server.app.create_app``): the
package ``gantry generate`` made from ``notes.yaml``, a dispatcher of its own whose guard is
Gantry's (credentials, roles, and on the flat ``/notes/{note_id}`` paths the workspace that owns
the note, through the owner lookup registered here), and handlers that keep notes in memory and
follow every rule the document declares. Users, workspaces, members and credentials are
Gantry's own.

``Notes.planted`` plants one of ``BUGS`` for the length of a block, so one app shows both that
the suite passes the faithful handlers and that it catches each bug.
"""

from __future__ import annotations

import dataclasses
import secrets
import string
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml
from sqlalchemy.orm import Session

from server.app import load_spec_document
from server.mock.package import import_package
from server.runtime.context import Reply, Request
from server.runtime.dispatch import Dispatcher, GantryGuard, Handler
from server.runtime.errors import Conflict, Forbidden, NotFound
from server.runtime.schemas import SchemaBundle
from server.state import AppState

NOTES_SPEC = Path(__file__).with_name("notes.yaml")
GANTRY = Path(sys.executable).with_name("gantry")
_BASE62 = string.digits + string.ascii_letters

# The bugs a test may plant, each in words.
BUGS = {
    "precondition_ignored": "a published note is deleted (the note_published precondition)",
    "illegal_transition": "a draft note is archived (only a published one may be)",
    "foreign_note_reachable": (
        "the guard finds a note's workspace but never checks the caller's role there"
    ),
    "patch_resets_summary": "a PATCH without summary clears it",
}


def notes_package(folder: Path) -> ModuleType:
    """The package ``gantry generate`` makes from ``notes.yaml`` in ``folder``, imported under
    a name of its own."""
    out = folder / f"notes_api_{secrets.token_hex(4)}"
    result = subprocess.run(
        [str(GANTRY), "generate", "--spec", str(NOTES_SPEC), "--out", str(out)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return import_package(out)


def notes_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(NOTES_SPEC.read_text(encoding="utf-8"))
    return document


class Notes:
    """The notes, kept in memory: the handlers, the owner lookup, and the planted bug."""

    def __init__(self, package: ModuleType) -> None:
        self.package = package
        self.document = load_spec_document(package)
        self.grants = {
            str(role): frozenset(map(str, granted))
            for role, granted in (self.document.get("x-gantry-role-grants") or {}).items()
        }
        self._notes: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.bug: str | None = None

    @contextmanager
    def planted(self, bug: str) -> Iterator[None]:
        """Serve with ``bug`` (one of ``BUGS``) for the block."""
        assert bug in BUGS, bug
        self.bug = bug
        try:
            yield
        finally:
            self.bug = None

    # ── wiring ────────────────────────────────────────────────────────────────────────────────

    def owner(self, db: Session, note_id: str) -> str | None:
        """The owner lookup of ``Note``: the workspace of the note, or None."""
        note = self._notes.get(note_id)
        return str(note["workspace_id"]) if note is not None else None

    def extend(self, app: Any) -> None:
        """Add the notes' routes to the Gantry ``app``."""
        core: AppState = app.extensions["gantry"]
        state = dataclasses.replace(
            core,
            spec_document=self.document,
            owner_lookups={"Note": self.owner},
            clock=lambda: core.clock(),  # the core's, even once a test moves it
        )
        handlers: dict[str, Handler] = {
            "createNote": self.create,
            "getNote": self.get,
            "updateNote": self.update,
            "deleteNote": self.delete,
            "publishNote": self.publish,
            "archiveNote": self.archive,
            "shareNote": self.share,
        }
        dispatcher = Dispatcher(
            bundle=SchemaBundle.from_package(self.package),
            models=self.package.models,
            guard=_NotesGuard(self, state),
            cursors=core.cursors,
            session_factory=core.database.read_sessionmaker,
            write_session_factory=core.database.write_sessionmaker,
            state=state,
            handlers=lambda operation: handlers[operation.operation_id],
        )
        self.package.routes.register_routes(app, dispatcher.bind)

    # ── handlers ──────────────────────────────────────────────────────────────────────────────

    def create(self, req: Request) -> Reply:
        note_id = "note_" + "".join(secrets.choice(_BASE62) for _ in range(24))
        note = {
            "id": note_id,
            "workspace_id": req.path["workspace_id"],
            "title": req.body.title,
            "summary": None,
            "status": "draft",
        }
        with self._lock:
            self._notes[note_id] = note
        return Reply(body=dict(note), status=201)

    def get(self, req: Request) -> dict[str, Any]:
        return dict(self._find(req))

    def update(self, req: Request) -> dict[str, Any]:
        with self._lock:
            note = self._find(req)
            for name in req.body.model_fields_set:
                note[name] = getattr(req.body, name)
            if self.bug == "patch_resets_summary":
                note["summary"] = req.body.summary
            return dict(note)

    def delete(self, req: Request) -> None:
        with self._lock:
            note = self._find(req)
            if note["status"] == "published" and self.bug != "precondition_ignored":
                raise Conflict("A published note cannot be deleted.", code="note_published")
            del self._notes[note["id"]]

    def publish(self, req: Request) -> dict[str, Any]:
        return self._move(req, ("draft",), "published")

    def archive(self, req: Request) -> dict[str, Any]:
        sources = ("draft", "published") if self.bug == "illegal_transition" else ("published",)
        return self._move(req, sources, "archived")

    def share(self, req: Request) -> None:
        role = getattr(req.body.role, "value", req.body.role)
        if role not in self.grants.get(str(req.role), frozenset()):
            raise Forbidden(f"A {req.role} cannot share as {role}.", code="insufficient_role")

    def _move(self, req: Request, sources: tuple[str, ...], to: str) -> dict[str, Any]:
        with self._lock:
            note = self._find(req)
            if note["status"] not in sources:
                raise Conflict(
                    f"A {note['status']} note cannot become {to}.", code="invalid_transition"
                )
            note["status"] = to
            return dict(note)

    def _find(self, req: Request) -> dict[str, Any]:
        """The note the path names, in the workspace the runtime found for the request."""
        note = self._notes.get(req.path["note_id"])
        if note is None or note["workspace_id"] != req.path["workspace_id"]:
            raise NotFound("Note not found.")
        return note


class _NotesGuard:
    """Gantry's guard, or with ``foreign_note_reachable`` planted, one that finds a note's
    workspace but trusts any caller with the operation's least role there."""

    def __init__(self, notes: Notes, state: AppState) -> None:
        self.notes, self.state, self.inner = notes, state, GantryGuard(state)

    def authenticate(self, operation: Any, http: Any, session: Callable[[], Session]) -> Any:
        return self.inner.authenticate(operation, http, session)

    def authorize(
        self,
        operation: Any,
        principal: Any,
        path: dict[str, Any],
        session: Callable[[], Session],
    ) -> str | None:
        item = self.state.ownership.item(operation.operation_id)
        if self.notes.bug != "foreign_note_reachable" or item is None:
            return self.inner.authorize(operation, principal, path, session)
        path["workspace_id"] = item.workspace_of(session(), path)
        role: str | None = operation.min_role
        return role
