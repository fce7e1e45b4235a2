"""The server's executor: threads that claim queued runs and execute them, a heartbeat that
keeps their leases, and the reaper that re-queues what a dead executor left behind.

It runs inside each ``gantry serve`` process (``GANTRY_EXECUTOR_THREADS`` threads, default 2)
or alone as ``gantry executor``; any number of them may share one database, since a run is
claimed by one lease at a time (``server.domain.run_queue``). A thread that finds nothing to
claim sleeps until this process queues or resumes a run (the event bus) or ``poll_s`` passes
(a run queued by another process).

Each claimed run is handed to the engine (``execute_run(units, run_id, lease)``), which writes
through the queue's fenced functions in short units of work of its own. Meanwhile the
heartbeat renews every held lease each third of its TTL; a run whose lease it could not renew
is no longer this executor's, and the engine's next write finds that out and stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from server.domain import events, run_queue
from server.domain.errors import Conflict
from server.domain.run_queue import DEFAULT_POLICY, Lease, Outcome, QueuePolicy
from server.domain.unit import SYSTEM, UnitOfWork, unit_of_work

if TYPE_CHECKING:
    from server.state import AppState

__all__ = ["Engine", "Executor", "for_app"]

_log = logging.getLogger("gantry.executor")

# What executes one claimed run: ``workflow_engine.execute_run`` with its model access bound.
Engine = Callable[[Callable[[], AbstractContextManager[UnitOfWork]], str, Lease], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Executor:
    """``threads`` claimers over the sessions of one database, plus a heartbeat and reaper."""

    def __init__(
        self,
        sessions: Callable[[], Session],
        engine: Engine,
        *,
        threads: int = 2,
        policy: QueuePolicy = DEFAULT_POLICY,
        poll_s: float = 0.5,
        reap_every_s: float | None = None,
        name: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
        bus: events.EventBus = events.BUS,
    ) -> None:
        self.sessions = sessions
        self.engine = engine
        self.threads = threads
        self.policy = policy
        self.poll_s = poll_s
        lease_s = policy.lease_ttl.total_seconds()
        self.beat_every_s = lease_s / 3
        self.reap_every_s = reap_every_s if reap_every_s is not None else min(5.0, lease_s / 2)
        self.name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.clock = clock
        self.bus = bus
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._held: dict[str, Lease] = {}
        self._held_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._unsubscribe: Callable[[], None] | None = None

    # ── units of work ───────────────────────────────────────────────────────────────────────

    @contextmanager
    def unit(self) -> Iterator[UnitOfWork]:
        """One committed unit of work by the system, at the executor's clock."""
        with unit_of_work(self.sessions, SYSTEM, now=self.clock()) as uow:
            yield uow

    # ── lifecycle ───────────────────────────────────────────────────────────────────────────

    def start(self) -> Executor:
        """Start the claimers and the heartbeat (daemon threads) and listen for new runs."""
        self._unsubscribe = self.bus.subscribe(self._hear)
        for index in range(self.threads):
            self._spawn(self._claim_loop, f"gantry-executor-{index}", f"{self.name}:{index}")
        self._spawn(self._upkeep_loop, "gantry-executor-upkeep")
        _log.info("executor %s started: %d threads", self.name, self.threads)
        return self

    def _spawn(self, target: Callable[..., None], name: str, *args: str) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._workers.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming; wait up to ``timeout`` seconds for the runs in hand to finish (a run
        still running then keeps its lease until it expires, and is re-queued)."""
        self._stop.set()
        self._wake.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        for thread in self._workers:
            thread.join(timeout)

    def wait(self) -> None:
        """Block until ``stop`` (``gantry executor`` in the foreground)."""
        while not self._stop.wait(1.0):
            pass

    def _hear(self, event: events.Event) -> None:
        """Wake a claimer when this process queued a run or resumed one."""
        if event.type == "run.created" or (
            event.type == "run.status_changed" and event.data.get("to") in ("queued", "running")
        ):
            self._wake.set()

    # ── claiming and executing ──────────────────────────────────────────────────────────────

    def _claim_loop(self, owner: str) -> None:
        while not self._stop.is_set():
            try:
                lease = self.claim_one(owner)
            except Exception:
                _log.exception("claiming a run failed")
                lease = None
            if lease is None:
                self._wake.wait(self.poll_s)
                self._wake.clear()
                continue
            self.execute(lease)

    def claim_one(self, owner: str) -> Lease | None:
        """Claim (and start) the oldest claimable run, if any."""
        with self.unit() as uow:
            leases = run_queue.claim_next(uow, owner=owner, policy=self.policy)
        return leases[0] if leases else None

    def execute(self, lease: Lease) -> None:
        """Hand the claimed run to the engine, its lease renewed meanwhile."""
        with self._held_lock:
            self._held[lease.run_id] = lease
        try:
            self.engine(self.unit, lease.run_id, lease)
        except Exception as exc:
            _log.exception("run %s failed in the executor", lease.run_id)
            self._fail(lease, exc)
        finally:
            with self._held_lock:
                self._held.pop(lease.run_id, None)

    def _fail(self, lease: Lease, exc: Exception) -> None:
        """End a run the engine gave up on unexpectedly as ``failed`` (if still ours)."""
        error = {"code": "executor_error", "message": f"{type(exc).__name__}: {exc}"[:2000]}
        try:
            with self.unit() as uow:
                run_queue.complete(uow, lease, Outcome("failed", error=error))
        except Conflict:
            pass  # no longer ours, or ended meanwhile
        except Exception:
            _log.exception("could not record the failure of run %s", lease.run_id)

    # ── heartbeat and reaper ────────────────────────────────────────────────────────────────

    def _upkeep_loop(self) -> None:
        tick = min(self.beat_every_s, self.reap_every_s)
        next_beat = next_reap = time.monotonic()
        while not self._stop.wait(tick):
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.beat_every_s
                self.renew_leases()
            if now >= next_reap:
                next_reap = now + self.reap_every_s
                self.reap()

    def renew_leases(self) -> None:
        """Heartbeat every held lease; a lease that cannot be renewed is forgotten."""
        with self._held_lock:
            held = list(self._held.values())
        for lease in held:
            try:
                with self.unit() as uow:
                    run_queue.heartbeat(uow, lease, self.policy)
            except Conflict:
                with self._held_lock:
                    self._held.pop(lease.run_id, None)
            except Exception:
                _log.exception("heartbeat of run %s failed", lease.run_id)

    def reap(self) -> run_queue.ReapReport | None:
        """One reaper sweep; logged when it moved anything."""
        try:
            with self.unit() as uow:
                report = run_queue.reap(uow, self.policy)
        except Exception:
            _log.exception("the reaper's sweep failed")
            return None
        if report.total:
            _log.warning("reaper: %s", report.moves)
        return report


def for_app(state: AppState, *, threads: int | None = None) -> Executor:
    """The executor of a built app: its database, its queue settings, and the workflow engine
    with model steps through the app's AI gateway."""
    from server.domain.workflow_engine import GatewayModels, execute_run

    models = GatewayModels(state.gateway, state.secret_box)

    def engine(
        units: Callable[[], AbstractContextManager[UnitOfWork]], run_id: str, lease: Lease
    ) -> None:
        execute_run(units, run_id, lease, models=models)

    config = state.config
    return Executor(
        state.database.write_sessionmaker,
        engine,
        threads=config.executor_threads if threads is None else threads,
        policy=run_queue.policy_of(config),
        clock=state.clock,
    )
