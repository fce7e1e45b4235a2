"""A resource added to a spec with declared rules is probed without suite code.

``notes.yaml`` is a small Gantry-style document with one new resource, a note, whose rules are
declared and nothing else: who may grant which roles, a precondition, a state machine, its
owner (and which path parameter names a note) and a partial update with a nullable field. The
generator accepts it, and the suite's reading of it (``rules.plan``, what ``probes.py`` then
sends) covers every declared rule; the Gantry spec's own declarations are read the same way.
``test_notes_probes.py`` then serves the notes and runs the probes against them.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from contract_tests import rules
from contract_tests.spec import Document, duration, local_document

NOTES = Path(__file__).with_name("notes.yaml")
GANTRY = Path(sys.executable).with_name("gantry")


def _notes() -> Document:
    raw: dict[str, Any] = yaml.safe_load(NOTES.read_text())
    return Document(raw)


def test_the_generator_accepts_the_declarations(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(GANTRY), "generate", "--spec", str(NOTES), "--out", str(tmp_path / "notes")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in (result.stdout + result.stderr).lower()


def test_every_declared_rule_of_a_new_resource_becomes_probes() -> None:
    assert rules.plan(_notes()) == [
        "grants shareNote: admin sets role to ['editor', 'viewer'] (others: 403 insufficient_role)",
        "grants shareNote: owner sets role to ['editor', 'owner', 'viewer'] "
        "(others: 403 insufficient_role)",
        "precondition deleteNote: The note is published. -> 409 note_published",
        "state_machine Note: publishNote in draft -> published",
        "state_machine Note: archiveNote in draft refused 409 invalid_transition",
        "state_machine Note: publishNote in published refused 409 invalid_transition",
        "state_machine Note: archiveNote in published -> archived",
        "state_machine Note: publishNote in archived refused 409 invalid_transition",
        "state_machine Note: archiveNote in archived refused 409 invalid_transition",
        "ownership getNote: note_id of another workspace -> 404",
        "ownership deleteNote: note_id of another workspace -> 404",
        "ownership updateNote: note_id of another workspace -> 404",
        "ownership publishNote: note_id of another workspace -> 404",
        "ownership archiveNote: note_id of another workspace -> 404",
        "partial_update updateNote: one field at a time, the rest unchanged",
    ]


def test_the_probes_are_named_by_their_declarations() -> None:
    assert sorted(rules.declared(_notes())) == [
        "grants shareNote",
        "ownership archiveNote",
        "ownership deleteNote",
        "ownership getNote",
        "ownership publishNote",
        "ownership updateNote",
        "partial_update updateNote",
        "precondition deleteNote note_published",
        "state_machine Note",
    ]


def test_the_state_machine_reaches_every_state_the_shortest_way() -> None:
    (machine,) = rules.state_machines(_notes())
    paths = {state: [t.operation_id for t in steps] for state, steps in machine.paths().items()}
    assert paths == {
        "draft": [],
        "published": ["publishNote"],
        "archived": ["publishNote", "archiveNote"],
    }


def test_the_gantry_spec_declares_its_rules_for_the_suite() -> None:
    declared = set(rules.declared(local_document()))
    assert {
        "grants addMember",
        "grants updateMember",
        "grants removeMember",
        "precondition updateMember last_owner",
        "precondition removeMember last_owner",
        "state_machine Token",
        "state_machine ApiKey",
        "ownership updateMember",
        "ownership removeMember",
        "ownership revokeApiKey",
        "ownership updateToken",
        "ownership revokeToken",
        "partial_update updateWorkspace",
        "partial_update updateMember",
    } <= declared


def test_a_note_id_names_a_note_that_a_workspace_owns() -> None:
    notes = _notes()
    assert notes.resource_of({"$ref": "#/components/schemas/NoteId"}) == "Note"
    assert notes.resource_of({"$ref": "#/components/schemas/WorkspaceId"}) is None
    assert notes.owner_of({"$ref": "#/components/schemas/Note"}) == "workspace"


def test_the_session_lifetimes_are_read_from_the_spec() -> None:
    assert local_document().session_lifetimes() == (timedelta(hours=12), timedelta(days=7))
    assert _notes().session_lifetimes() is None


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("PT12H", timedelta(hours=12)),
        ("P7D", timedelta(days=7)),
        ("P1W", timedelta(weeks=1)),
        ("P1DT2H30M15S", timedelta(days=1, hours=2, minutes=30, seconds=15)),
    ],
)
def test_durations_are_read_as_iso_8601(text: str, length: timedelta) -> None:
    assert duration(text) == length


@pytest.mark.parametrize("text", ["12h", "P", "PT", "P1Y", "P1M", "P1DT"])
def test_other_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        duration(text)
