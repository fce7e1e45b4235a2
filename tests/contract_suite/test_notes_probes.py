"""A resource added to the spec with declared rules is probed without suite code, for real.

The notes of ``notes.yaml`` are served beside Gantry's own operations (``notes_app``) by
handlers that keep every rule the document declares; the suite runs against them exactly as it
runs against Gantry: its world (users, workspaces, members, credentials) made through Gantry's
operations, its probes (``probes.run``) and auth matrix (``parts.auth_row``) read from the notes
document and its operation table. The faithful handlers pass; each planted bug is caught.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from contract_tests import parts, probes, rules, spec
from contract_tests.runner import Finding, load_schema
from contract_tests.target import Target, in_process_target
from contract_tests.world import CALLER_NAMES, World
from tests.contract_suite.notes_app import BUGS, Notes, notes_package


@dataclass
class NotesContract:
    notes: Notes
    target: Target
    world: World
    schema: Any

    def declared_rules(self) -> list[Finding]:
        """The findings of every probe of the notes' declared rules."""
        found: list[Finding] = []
        for name in sorted(rules.declared(self.world.doc)):
            found.extend(probes.run(self.world, self.schema, name))
        return found

    def auth_matrix(self) -> list[Finding]:
        """The findings of the auth matrix over every notes operation and every caller."""
        found: list[Finding] = []
        for op in spec.operations():
            for caller in CALLER_NAMES:
                found.extend(parts.auth_row(self.world, self.schema, op, caller))
        return found


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotesContract]:
    notes = Notes(notes_package(tmp_path_factory.mktemp("notes")))
    document = spec.Document(notes.document)
    with in_process_target("sqlite", extend=notes.extend) as target:
        core = spec.Document(target.spec_document())
        with spec.serving(notes.package.operations, document):
            world = World(target, document, core).build()
            yield NotesContract(notes, target, world, load_schema(target, document.raw))


def test_the_suite_tests_the_notes_operations(contract: NotesContract) -> None:
    assert sorted(op.operation_id for op in spec.operations()) == [
        "archiveNote",
        "createNote",
        "deleteNote",
        "getNote",
        "publishNote",
        "shareNote",
        "updateNote",
    ]


def test_faithful_notes_keep_every_declared_rule(contract: NotesContract) -> None:
    assert [str(f) for f in contract.declared_rules()] == []


def test_the_auth_matrix_covers_the_flat_paths_of_faithful_notes(contract: NotesContract) -> None:
    assert [str(f) for f in contract.auth_matrix()] == []


def test_the_auth_matrix_expects_the_owning_workspaces_rules_on_a_flat_path(
    contract: NotesContract,
) -> None:
    """What the matrix expects on ``/notes/{note_id}``: the roles in the note's workspace."""
    op = spec.by_id("updateNote")
    expected = {
        name: str(spec.expected(op, contract.world.request_for(op, caller).caller))
        for name in CALLER_NAMES
        if not (caller := parts.caller_named(contract.world, name)).unavailable
    }
    assert expected["non_member_pat"] == "404 not_found"
    assert expected["superadmin_pat"] == "404 not_found"
    assert expected["foreign_api_key"] == "404 not_found"
    assert expected["viewer_pat"] == "403 insufficient_role"
    assert expected["owner_read_pat"] == "403 scope_denied"
    assert expected["editor_pat"] == expected["editor_api_key"] == "pass"


CAUGHT = {
    "precondition_ignored": ("precondition", "DELETE /notes/{note_id}"),
    "illegal_transition": ("state_machine", "POST /notes/{note_id}/archive"),
    "foreign_note_reachable": ("ownership", "DELETE /notes/{note_id}"),
    "patch_resets_summary": ("partial_update", "PATCH /notes/{note_id}"),
}


@pytest.mark.parametrize("bug", sorted(BUGS))
def test_a_planted_bug_is_caught_by_the_probe_of_its_rule(
    contract: NotesContract, bug: str
) -> None:
    with contract.notes.planted(bug):
        found = contract.declared_rules()
    assert CAUGHT[bug] in {(f.check, f.operation) for f in found}, [str(f) for f in found]


def test_a_foreign_note_is_caught_by_the_auth_matrix_too(contract: NotesContract) -> None:
    with contract.notes.planted("foreign_note_reachable"):
        found = contract.auth_matrix()
    refusals = {(f.operation, f.message.split(":")[0]) for f in found if f.check == "auth_matrix"}
    assert ("GET /notes/{note_id}", "non_member_pat") in refusals
    assert ("PATCH /notes/{note_id}", "viewer_pat") in refusals
