"""Nothing lost, nothing twice: runs go through four executor processes that are killed with
SIGKILL, and stalled with SIGSTOP past their leases, at random moments.

Every run must end in a terminal state exactly once along a legal history; no step may be
recorded as completed by two lease holders (each process's ledger says which lease completed
which step, after its commit); re-queued runs carry ``attempt`` > 1. ``make test`` runs it
small (``GANTRY_KILL_RUNS``, default 12, with 3 kills and 2 stalls), ``make soak`` with 500 runs.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from server.domain import run_queue, run_states
from server.domain.run_queue import NewRun, QueuePolicy
from server.domain.unit import unit_of_work
from server.storage import runs as run_rows
from server.storage.run_models import Run, RunStep
from tests.runs.conftest import Queue
from tests.runs.kill_executor import STEPS

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("GANTRY_KILL_RUNS", "12"))
# The SIGKILLs and the SIGSTOP stalls dealt out while runs are in hand (``make soak``: more).
KILLS = int(os.environ.get("GANTRY_KILL_KILLS", "3"))
STALLS = int(os.environ.get("GANTRY_KILL_STALLS", "2"))
PROCESSES = 4
TIMEOUT_S = float(os.environ.get("GANTRY_KILL_TIMEOUT_S", "90"))
LEASE_S = 1.0


class Executors:
    """The executor processes, started, killed, stalled and restarted by the test."""

    def __init__(self, url: str, ledgers: Path) -> None:
        self.url = url
        self.ledgers = ledgers
        self.processes: list[subprocess.Popen[bytes]] = []
        self.started = 0
        self.kills = 0
        self.stalls = 0

    def spawn(self) -> subprocess.Popen[bytes]:
        self.started += 1
        env = {**os.environ, "GANTRY_KILL_LEASE_S": str(LEASE_S)}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.runs.kill_executor",
                self.url,
                str(self.ledgers / f"{self.started}.log"),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def victim(self, holders: set[int]) -> subprocess.Popen[bytes]:
        """A live process holding a run when there is one (``holders``: their pids)."""
        live = [p for p in self.processes if p.poll() is None]
        return random.choice([p for p in live if p.pid in holders] or live)

    def kill_one(self, holders: set[int]) -> None:
        """SIGKILL a process (holding runs, preferably) and start another in its place."""
        victim = self.victim(holders)
        victim.kill()
        victim.wait()
        self.processes.remove(victim)
        self.kills += 1
        self.spawn()

    def stall_one(self, holders: set[int]) -> None:
        """SIGSTOP a process (holding runs, preferably) for longer than its leases, then let
        it go on: its leases are gone when it wakes, and every write it then tries must be
        refused, while another process has taken its runs over."""
        victim = self.victim(holders)
        victim.send_signal(signal.SIGSTOP)
        time.sleep(LEASE_S * 1.6)
        victim.send_signal(signal.SIGCONT)
        self.stalls += 1

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait()


def test_killed_executors_lose_nothing_and_run_nothing_twice(queue: Queue, tmp_path: Path) -> None:
    policy = QueuePolicy(lease_ttl=timedelta(seconds=LEASE_S), max_attempts=5)
    chaos = ["kill"] * KILLS + ["stall"] * STALLS
    random.shuffle(chaos)
    # The runs are queued in waves, one before each strike and the last after them, so there
    # is work in hand at every strike however fast the executors are.
    waves = [RUNS // (len(chaos) + 1)] * len(chaos)
    waves.append(RUNS - sum(waves))
    ids: list[str] = []

    def queue_wave() -> None:
        with unit_of_work(queue.database.write_sessionmaker, now=datetime.now(UTC)) as uow:
            for _ in range(waves.pop(0)):
                new = NewRun(
                    workspace_id=queue.workspace_id, source_type="workflow", source_id=None
                )
                ids.append(run_queue.enqueue(uow, new, policy).run.id)

    queue_wave()
    executors = Executors(queue.url, tmp_path)
    for _ in range(PROCESSES):
        executors.spawn()
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while (waves or _unfinished(queue, ids)) and time.monotonic() < deadline:
            holders = _holders(queue) if chaos else set()
            if holders:  # strike at once, at a process with a run in hand
                act = executors.kill_one if chaos.pop() == "kill" else executors.stall_one
                act(holders)
                if waves:  # a wave may have gone early, when the work ran out before a strike
                    queue_wave()
                time.sleep(random.uniform(0.1, 0.5))
            elif waves and (not chaos or not _unfinished(queue, ids)):
                queue_wave()  # the strikes are over, or the work ran out before the next
            else:
                time.sleep(0.02)
    finally:
        executors.stop()
    assert not _unfinished(queue, ids), f"runs left unfinished after {TIMEOUT_S} s"
    print(f"{RUNS} runs, {executors.kills} kills, {executors.stalls} stalls")
    assert executors.kills >= 1

    with queue.database.session() as s:
        runs = {r.id: r for r in s.query(Run).filter(Run.id.in_(ids)).all()}
        histories = {run_id: run_rows.history(s, run_id) for run_id in ids}
        steps = {
            (st.run_id, st.key): st for st in s.query(RunStep).filter(RunStep.run_id.in_(ids)).all()
        }

    # Every run ended once, along a legal path.
    for run_id, history in histories.items():
        path = [(t.from_status, t.to_status, t.event) for t in history]
        assert run_states.is_legal_history(path), (run_id, path)
        assert sum(t.to_status in run_states.TERMINAL for t in history) == 1, (run_id, path)
        assert runs[run_id].status == history[-1].to_status
    # Every claim after the first shows up as a further attempt.
    requeued = [r for r in runs.values() if r.attempt > 1]
    assert requeued, "no run was re-queued: the kills did not hit a run in hand"
    for run in requeued:
        assert sum(t.event == "requeue" for t in histories[run.id]) == run.attempt - 1

    # No step was completed by two lease holders; the stored step is the one completed.
    completed_by: dict[tuple[str, str], set[str]] = defaultdict(set)
    for ledger in tmp_path.glob("*.log"):
        for line in ledger.read_text(encoding="utf-8").splitlines():
            run_id, key, lease_id = line.split()
            completed_by[(run_id, key)].add(lease_id)
    twice = {step: leases for step, leases in completed_by.items() if len(leases) > 1}
    assert not twice, f"steps completed by more than one lease holder: {twice}"
    for (run_id, key), (lease_id,) in completed_by.items():
        assert steps[(run_id, key)].lease_id == lease_id
        assert steps[(run_id, key)].status == "succeeded"
    for run in runs.values():
        if run.status == "succeeded":
            assert all(steps[(run.id, key)].status == "succeeded" for key in STEPS)


def _holders(queue: Queue) -> set[int]:
    """The pids of the executor processes holding a run now (owners are ``kill-PID:N``)."""
    with queue.database.session() as s:
        owners = s.scalars(
            select(Run.lease_owner).where(
                Run.status.in_(("claimed", "running")), Run.lease_owner.is_not(None)
            )
        ).all()
    return {int(owner.split(":")[0].removeprefix("kill-")) for owner in owners if owner}


def _unfinished(queue: Queue, ids: list[str]) -> int:
    with queue.database.session() as s:
        return s.query(Run).filter(Run.id.in_(ids), Run.finished_at.is_(None)).count()
