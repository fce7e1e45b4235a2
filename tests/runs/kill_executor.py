"""One executor process of the kill test: ``python -m tests.runs.kill_executor URL LEDGER``.

It runs the real ``Executor`` (claimers, heartbeat, reaper) with short leases over a test
engine: three steps a run, each recorded ``running`` then ``succeeded`` under the lease, with
a short pause between. After each step's success has committed, the engine appends
``run_id step_key lease_id`` to the ledger file, so the test learns which lease holder
completed which step, even of holders it later killed. A step found already succeeded (an
earlier holder's) is not run again and not written to the ledger.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from server.domain import run_queue
from server.domain.errors import Conflict
from server.domain.run_queue import Lease, LogLine, Outcome, QueuePolicy, StepWrite
from server.domain.unit import UnitOfWork
from server.executor import Executor
from server.storage.db import Database

STEPS = ("fetch", "think", "answer")
LEASE_TTL = timedelta(seconds=float(os.environ.get("GANTRY_KILL_LEASE_S", "1.0")))

Units = Callable[[], AbstractContextManager[UnitOfWork]]


def engine_for(ledger_path: str) -> Callable[[Units, str, Lease], None]:
    ledger = open(ledger_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115  # for the process's life

    def execute(units: Units, run_id: str, lease: Lease) -> None:
        try:
            for key in STEPS:
                with units() as uow:
                    step = run_queue.record_step(
                        uow, lease, StepWrite(key, key, "transform", "running")
                    )
                if step.status == "succeeded":
                    continue  # completed under an earlier lease: resume after it
                time.sleep(random.uniform(0.03, 0.2))
                with units() as uow:
                    run_queue.record_step(
                        uow, lease, StepWrite(key, key, "transform", "succeeded", output=key)
                    )
                    run_queue.append_logs(uow, lease, [LogLine(f"{key} done", channel="stdout")])
                ledger.write(f"{run_id} {key} {lease.lease_id}\n")
            with units() as uow:
                run_queue.complete(uow, lease, Outcome("succeeded", output=list(STEPS)))
        except run_queue.LeaseLost:
            return  # no longer ours: stop without a word
        except Conflict as refused:
            if refused.code != "invalid_transition":
                raise

    return execute


def main(url: str, ledger_path: str) -> None:
    database = Database(url)
    executor = Executor(
        database.write_sessionmaker,
        engine_for(ledger_path),
        threads=2,
        policy=QueuePolicy(lease_ttl=LEASE_TTL, max_attempts=5),
        poll_s=0.05,
        reap_every_s=LEASE_TTL.total_seconds() / 2,
        name=f"kill-{os.getpid()}",
    ).start()
    signal.signal(signal.SIGTERM, lambda *_: executor.stop(timeout=2.0))
    executor.wait()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
