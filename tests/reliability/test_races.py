"""The rules that span rows hold under concurrency, on SQLite and on PostgreSQL.

Each test runs ``ROUNDS`` rounds of one race: a fresh scene, two requests released together,
then the rule checked on what was committed. Every answer must be a documented one (never a
500): the loser of a race is refused with the problem the rules say.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select

from server.storage.models import AuditEvent
from tests.reliability.conftest import ROUNDS, Answer, Scene, Send

Race = Callable[..., list[Answer]]


def _outcomes(answers: list[Answer]) -> tuple[tuple[int, str | None], ...]:
    return tuple((a.status, a.code) for a in answers)


def test_deleting_both_owners_at_once_keeps_one(scene: Scene, race: Race) -> None:
    """DELETE /admin/users/{id} for each of a workspace's two owners at once."""
    admin = scene.person(superadmin=True)
    for _ in range(ROUNDS):
        a, b = scene.person(), scene.person()
        ws = scene.workspace({a: "owner", b: "owner"})
        answers = race(
            Send(admin, "DELETE", f"/admin/users/{a.id}"),
            Send(admin, "DELETE", f"/admin/users/{b.id}"),
        )
        assert scene.owners(ws) == 1, answers
        assert sorted(_outcomes(answers)) == [(204, None), (409, "last_owner")], answers


def test_deleting_an_owner_while_they_remove_the_other_keeps_one(scene: Scene, race: Race) -> None:
    """DELETE /admin/users/{a} while A removes owner B from the workspace. In odd rounds A's
    request also stamps A's token, a row the deletion removes."""
    admin = scene.person(superadmin=True)
    for round_ in range(ROUNDS):
        a, b = scene.person(stamped=round_ % 2 == 0), scene.person()
        ws = scene.workspace({a: "owner", b: "owner"})
        deleted, removed = race(
            Send(admin, "DELETE", f"/admin/users/{a.id}"),
            Send(a, "DELETE", f"/workspaces/{ws}/members/{b.id}"),
        )
        assert scene.owners(ws) == 1, (deleted, removed)
        if deleted.status == 204:
            # A is gone before their request read their role: the workspace is not theirs.
            assert (removed.status, removed.code) in {(404, "not_found"), (401, "unauthenticated")}
        else:
            assert (deleted.status, deleted.code) == (409, "last_owner"), deleted
            assert removed.status == 204, removed


def test_superadmins_demoting_each_other_keep_one(scene: Scene, race: Race) -> None:
    """Two superadmins demote (even rounds) or block (odd rounds) each other at once."""
    for round_ in range(ROUNDS):
        one, two = scene.person(superadmin=True), scene.person(superadmin=True)
        scene.only_superadmins(one, two)
        change = {"is_superadmin": False} if round_ % 2 == 0 else {"status": "blocked"}
        answers = race(
            Send(one, "PATCH", f"/admin/users/{two.id}", change),
            Send(two, "PATCH", f"/admin/users/{one.id}", change),
        )
        assert scene.active_superadmins() == 1, answers
        statuses = sorted(a.status for a in answers)
        assert statuses[0] == 200, answers
        # The loser was demoted or blocked first: refused as no longer an administrator.
        assert (statuses[1], max(answers, key=lambda a: a.status).code) in {
            (403, "forbidden"),
            (401, "unauthenticated"),
        }, answers


def test_superadmins_deleting_each_other_never_fail(scene: Scene, race: Race) -> None:
    """Two superadmins delete each other at once, each on their first request in a minute: each
    request stamps its token's last use and each deletion removes the other's token. Taken in
    the wrong order those locks deadlock on PostgreSQL (one request answers 500); in the right
    one the second waits, then finds its caller deleted."""
    for _ in range(ROUNDS):
        one = scene.person(superadmin=True, stamped=False)
        two = scene.person(superadmin=True, stamped=False)
        answers = race(
            Send(one, "DELETE", f"/admin/users/{two.id}"),
            Send(two, "DELETE", f"/admin/users/{one.id}"),
        )
        assert sorted(a.status for a in answers)[0] == 204, answers
        loser = max(answers, key=lambda a: a.status)
        assert (loser.status, loser.code) in {(401, "unauthenticated"), (403, "forbidden")}, answers
        assert scene.active_superadmins() >= 1


def test_a_demoted_owner_cannot_finish_removing_an_owner(scene: Scene, race: Race) -> None:
    """A demotes owner B to viewer while B removes owner C: B's removal may only commit if it
    came first, while B was still an owner."""
    for _ in range(ROUNDS):
        a, b, c = scene.person(), scene.person(), scene.person()
        ws = scene.workspace({a: "owner", b: "owner", c: "owner"})
        demoted, removed = race(
            Send(a, "PATCH", f"/workspaces/{ws}/members/{b.id}", {"role": "viewer"}),
            Send(b, "DELETE", f"/workspaces/{ws}/members/{c.id}"),
        )
        assert demoted.status == 200, demoted
        assert scene.role(ws, b) == "viewer"
        if removed.status == 204:
            assert _committed_first(scene, ws, "member.removed", "member.role_changed"), (
                "B's removal committed after B had been demoted"
            )
            assert scene.role(ws, c) is None
        else:
            assert (removed.status, removed.code) == (403, "insufficient_role"), removed
            assert scene.role(ws, c) == "owner"


def _committed_first(scene: Scene, workspace_id: str, first: str, then: str) -> bool:
    """Whether the audit event ``first`` was written before ``then`` in this workspace. A write
    records its event after it has taken the workspace's lock, so a serialised pair records in
    commit order."""
    session = scene.session()
    try:
        rows = session.execute(
            select(AuditEvent.action)
            .where(AuditEvent.workspace_id == workspace_id, AuditEvent.action.in_([first, then]))
            .order_by(AuditEvent.created_at, AuditEvent.id)
        ).all()
    finally:
        session.close()
    return [row[0] for row in rows] == [first, then]
