"""The run state machine, property-based: random sequences of API calls (cancel, input, retry)
and executor calls (claim, heartbeat, wait, complete, lost leases) on a few runs.

A model of the table (``run_states``) predicts each call's answer: allowed calls must succeed
and move the run where the table says, refused ones must answer 409 ``invalid_transition``
(or ``lease_lost``) and change nothing; after every step, each run's stored history must be a
legal path ending in its current status, with at most one terminal transition.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete

from server.domain import run_queue, run_states
from server.domain.errors import Conflict
from server.domain.run_queue import Lease, NewRun, Outcome, StepWrite
from server.domain.unit import unit_of_work
from server.storage import runs as run_rows
from server.storage.run_models import Run, RunStep, RunTransition
from tests.conftest import Api, Gantry, check_status

TERMINAL = run_states.TERMINAL


class RunMachine(RuleBasedStateMachine):
    """Runs of one workspace, driven through the API and the queue, checked against a model."""

    runs = Bundle("runs")

    def __init__(self, gantry: Gantry, workspace_id: str) -> None:
        super().__init__()
        self.admin: Api = gantry.admin
        self.workspace_id = workspace_id
        self.database = gantry.app.extensions["gantry"].database
        # The queue's clock runs ahead of the API's as leases are let expire.
        self.now = datetime.now(UTC)
        self.status: dict[str, str] = {}
        self.leases: dict[str, Lease] = {}
        self.asked_to_cancel: set[str] = set()
        with self.database.session(write=True) as s:  # each example starts with no runs
            for model in (RunStep, RunTransition, Run):
                s.execute(delete(model))

    def unit(self) -> Any:
        return unit_of_work(self.database.write_sessionmaker, now=self.now)

    def stored(self, run_id: str) -> Run:
        with self.database.session() as s:
            run = s.get(Run, run_id)
            assert run is not None
            return run

    # ── making runs ─────────────────────────────────────────────────────────────────────────

    @initialize(target=runs)
    def first_run(self) -> str:
        return self.make_run()

    @rule(target=runs)
    def make_run(self) -> str:
        with self.unit() as uow:
            new = NewRun(workspace_id=self.workspace_id, source_type="workflow", source_id=None)
            run_id = run_queue.enqueue(uow, new).run.id
        self.status[run_id] = "queued"
        return run_id

    # ── the executor ────────────────────────────────────────────────────────────────────────

    @rule()
    def claim(self) -> None:
        claimable = {
            run_id
            for run_id, status in self.status.items()
            if status == "queued" or (status == "running" and run_id not in self.leases)
        }
        with self.unit() as uow:
            leases = run_queue.claim_next(uow, owner="machine")
        assert bool(leases) == bool(claimable)
        for lease in leases:
            assert lease.run_id in claimable
            assert self.status[lease.run_id] in ("queued", "running")
            self.status[lease.run_id] = "running"
            self.leases[lease.run_id] = lease

    @rule(run_id=runs, outcome=st.sampled_from(["succeeded", "failed", "cancelled"]))
    def complete(self, run_id: str, outcome: str) -> None:
        lease = self.leases.get(run_id)
        if lease is None:
            return
        status = self.status[run_id]
        allowed = status == "running" and (outcome != "cancelled" or run_id in self.asked_to_cancel)
        try:
            with self.unit() as uow:
                run_queue.complete(uow, lease, Outcome(outcome, output={"by": lease.lease_id}))
        except Conflict as refused:
            assert not allowed, (status, outcome, refused.code)
            assert refused.code in ("invalid_transition", "lease_lost")
            return
        assert allowed or (status == outcome), (status, outcome)
        self.status[run_id] = outcome

    @rule(run_id=runs, release=st.booleans())
    def wait_for_input(self, run_id: str, release: bool) -> None:
        lease = self.leases.get(run_id)
        if lease is None:
            return
        allowed = self.status[run_id] == "running"
        try:
            with self.unit() as uow:
                run_queue.record_step(uow, lease, StepWrite("ask", "Ask", "approval", "waiting"))
                run_queue.wait_for_input(uow, lease, release=release)
        except Conflict:
            assert not allowed
            return
        assert allowed
        self.status[run_id] = "waiting"
        if release:
            del self.leases[run_id]

    @rule(run_id=runs)
    def heartbeat(self, run_id: str) -> None:
        lease = self.leases.get(run_id)
        if lease is None:
            return
        try:
            with self.unit() as uow:
                beat = run_queue.heartbeat(uow, lease)
        except Conflict:
            assert self.status[run_id] in TERMINAL
            return
        assert beat.status == self.status[run_id]
        assert beat.cancel_requested == (run_id in self.asked_to_cancel)

    @rule()
    def leases_run_out(self) -> None:
        """Every held lease expires and the reaper sweeps (attempts left: re-queued)."""
        self.now += timedelta(minutes=2)
        with self.unit() as uow:
            run_queue.reap(uow)
        for run_id, lease in list(self.leases.items()):
            status = self.status[run_id]
            if status in TERMINAL:
                continue
            del self.leases[run_id]
            if run_id in self.asked_to_cancel and status == "running":
                self.status[run_id] = "cancelled"
            elif lease.attempt < 3:
                self.status[run_id] = "queued"
            else:
                self.status[run_id] = "timed_out"

    # ── the API ─────────────────────────────────────────────────────────────────────────────

    @rule(run_id=runs)
    def cancel(self, run_id: str) -> None:
        status = self.status[run_id]
        answer = self.admin.post(f"/runs/{run_id}/cancel")
        if status in TERMINAL:
            check_status(answer, 409, "invalid_transition")
            assert answer.json["state"] == status
            return
        body = check_status(answer, 200)
        if status == "running" and run_id in self.leases:
            self.asked_to_cancel.add(run_id)
            assert (body["status"], body["cancel_requested"]) == ("running", True)
        else:
            self.status[run_id] = "cancelled"
            self.leases.pop(run_id, None)
            assert body["status"] == "cancelled"

    @rule(run_id=runs, answer=st.one_of(st.none(), st.booleans(), st.text(max_size=5)))
    def submit_input(self, run_id: str, answer: Any) -> None:
        status = self.status[run_id]
        response = self.admin.post(f"/runs/{run_id}/input", json={"input": answer})
        if status != "waiting":
            check_status(response, 409, "invalid_transition")
            return
        assert check_status(response, 200)["status"] == "running"
        self.status[run_id] = "running"

    @rule(target=runs, run_id=runs)
    def retry(self, run_id: str) -> str:
        status = self.status[run_id]
        response = self.admin.post(f"/runs/{run_id}/retry")
        if status not in TERMINAL:
            check_status(response, 409, "invalid_transition")
            return run_id
        body = check_status(response, 202)
        assert body["retry_of"] == run_id and body["status"] == "queued"
        self.status[body["id"]] = "queued"
        return str(body["id"])

    # ── what must always hold ───────────────────────────────────────────────────────────────

    @invariant()
    def histories_are_legal_paths(self) -> None:
        with self.database.session() as s:
            for run_id, expected in self.status.items():
                history = run_rows.history(s, run_id)
                path = [(t.from_status, t.to_status, t.event) for t in history]
                assert run_states.is_legal_history(path), path
                assert path[-1][1] == expected, (run_id, path, expected)
                assert sum(t.to_status in TERMINAL for t in history) <= 1


def test_random_calls_keep_every_run_on_a_legal_path(app: Flask, gantry: Gantry) -> None:
    workspace_id = gantry.workspace(gantry.admin)["id"]
    run_state_machine_as_test(
        lambda: RunMachine(gantry, workspace_id),
        settings=settings(
            max_examples=int(os.environ.get("GANTRY_STATE_EXAMPLES", "12")),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
