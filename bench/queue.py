"""The run queue on PostgreSQL: runs claimed and completed per second with 1, 2 and 4
executors, and what a claim costs against a bare ``UPDATE … RETURNING`` on the same table.

``python -m bench.queue`` (or step 6 of ``make bench``) needs a PostgreSQL database:
``GANTRY_BENCH_DATABASE_URL``, else ``GANTRY_TEST_DATABASE_URL``; without one it says so and
measures nothing. It works in a schema of its own, dropped at the end.

* **Throughput.** The table holds ``QUEUED`` queued runs (and the runs finished before them).
  Each executor is a process looping as the server's executor does, minus the engine: claim
  one run (``run_queue.claim_next``: the ``FOR UPDATE SKIP LOCKED`` claim, the start, the
  history rows and events) in one transaction, complete it in another. Runs per second over
  ``SECONDS``, for 1, 2 and 4 processes, the median of ``ROUNDS`` rounds.
* **A claim's cost.** One client, alternating: ``claim_next`` alone (one transaction), and a
  bare single-statement ``UPDATE runs SET updated_at = … WHERE id = … RETURNING id`` of a
  queued row (one transaction). Median µs of each, and their ratio.

Commits are durable (``synchronous_commit`` as the server has it), so on a small machine the
figures are bounded by fsyncs: two per run.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, insert, text, update
from sqlalchemy.pool import NullPool

QUEUED = 4000
SECONDS = 3.0
ROUNDS = 3
EXECUTORS = (1, 2, 4)
COST_SAMPLES = 300


def database_url() -> str | None:
    """The PostgreSQL URL to measure on, if one is configured."""
    for name in ("GANTRY_BENCH_DATABASE_URL", "GANTRY_TEST_DATABASE_URL"):
        url = os.environ.get(name, "").strip()
        if url:
            return url
    return None


def _schema_url(base: str, schema: str) -> str:
    from server.storage.db import normalize_url

    url = normalize_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def _fill(url: str, workspace_id: str, count: int) -> None:
    """Add ``count`` queued runs."""
    from server.storage.db import Database
    from server.storage.run_models import Run

    database = Database(url)
    now = datetime.now(UTC)
    rows = []
    for n in range(count):
        stamp = now + timedelta(microseconds=n)
        rows.append(
            {
                "id": "run_" + secrets.token_hex(12),
                "workspace_id": workspace_id,
                "source_type": "workflow",
                "source_id": None,
                "executor": "server",
                "labels": [],
                "status": "queued",
                "attempt": 0,
                "max_attempts": 3,
                "input": {},
                "variables": {},
                "prompt_tokens": 0,
                "completion_tokens": 0,
                "cost_usd": 0.0,
                "cancel_requested": False,
                "queue_expires_at": now + timedelta(days=1),
                "max_duration_s": 3600,
                "queued_at": stamp,
                "available_at": stamp,
                "created_at": stamp,
                "updated_at": stamp,
            }
        )
    with database.session() as s:
        s.execute(insert(Run), rows)
    database.dispose()


def _executor(url: str, seconds: float, ready: Any, go: Any, done: Any) -> None:
    """One executor process: once every process is ready, claim and complete for
    ``seconds``."""
    from server.domain import run_queue
    from server.domain.run_queue import Outcome
    from server.domain.unit import unit_of_work
    from server.storage.db import Database

    database = Database(url)
    sessions = database.write_sessionmaker
    owner = f"bench-{os.getpid()}"
    with database.session() as s:  # connected, so the first claim pays no connect
        s.execute(text("SELECT 1"))
    ready.put(os.getpid())
    go.wait()
    count = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        with unit_of_work(sessions) as uow:
            leases = run_queue.claim_next(uow, owner=owner)
        if not leases:
            break
        with unit_of_work(sessions) as uow:
            run_queue.complete(uow, leases[0], Outcome("succeeded", output=None))
        count += 1
    done.put(count)
    database.dispose()


def _throughput(url: str, processes: int, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    ready, go, done = context.Queue(), context.Event(), context.Queue()
    workers = [
        context.Process(target=_executor, args=(url, seconds, ready, go, done))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    go.set()
    total = sum(done.get(timeout=seconds + 120) for _ in workers)
    for worker in workers:
        worker.join()
    return total / seconds


def _claim_cost(url: str, samples: int) -> dict[str, float]:
    """Median µs of a ``claim_next`` and of a bare ``UPDATE … RETURNING``, interleaved."""
    from server.domain import run_queue
    from server.domain.unit import unit_of_work
    from server.storage.db import Database
    from server.storage.run_models import Run

    database = Database(url)
    sessions = database.write_sessionmaker
    claims: list[float] = []
    bare: list[float] = []
    with database.session() as s:
        queued = list(
            s.scalars(text("SELECT id FROM runs WHERE status = 'queued' ORDER BY available_at"))
        )
    spare = iter(reversed(queued))  # the bare updates take rows from the far end
    for _ in range(samples):
        started = time.perf_counter()
        with unit_of_work(sessions) as uow:
            run_queue.claim_next(uow, owner="bench-cost")
        claims.append(time.perf_counter() - started)
        run_id = next(spare)
        started = time.perf_counter()
        with database.session(write=True) as s:
            s.execute(
                update(Run)
                .where(Run.id == run_id)
                .values(updated_at=datetime.now(UTC))
                .returning(Run.id)
            ).scalar_one()
        bare.append(time.perf_counter() - started)
    database.dispose()
    claim_us = statistics.median(claims) * 1e6
    bare_us = statistics.median(bare) * 1e6
    return {
        "claim_us": round(claim_us, 1),
        "bare_update_returning_us": round(bare_us, 1),
        "ratio": round(claim_us / bare_us, 2),
    }


def run(log: Callable[[str], None] = print, *, quick: bool = False) -> dict[str, Any]:
    """Measure; returns ``{"runs_per_s": {N: median}, "claim_cost": {...}, "meta": {...}}``
    (``{"skipped": reason}`` without PostgreSQL)."""
    base = database_url()
    if base is None:
        log("the run queue: no PostgreSQL (GANTRY_BENCH_DATABASE_URL), skipped")
        return {"skipped": "no PostgreSQL configured"}
    from server.storage import repositories as repo
    from server.storage.db import Database, normalize_url
    from server.storage.models import Base

    schema = f"gantry_bench_{secrets.token_hex(5)}"
    admin = create_engine(normalize_url(base), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = _schema_url(base, schema)
    rounds, seconds = (1, 2.0) if quick else (ROUNDS, SECONDS)
    try:
        database = Database(url)
        Base.metadata.create_all(database.engine)
        with database.session() as s:
            user = repo.create_user(s, email="bench@example.com", name="Bench")
            workspace_id = repo.create_workspace(s, name="Bench", slug="bench", owner_id=user.id).id
        database.dispose()
        _fill(url, workspace_id, QUEUED)
        per_count: dict[str, list[float]] = {str(n): [] for n in EXECUTORS}
        for round_ in range(rounds):
            for processes in EXECUTORS:
                rate = _throughput(url, processes, seconds)
                per_count[str(processes)].append(rate)
                log(f"  round {round_ + 1}: {processes} executor(s): {rate:.0f} runs/s")
                _fill(url, workspace_id, int(rate * seconds) + 10)  # keep the queue full
        cost = _claim_cost(url, 100 if quick else COST_SAMPLES)
        with admin.connect() as conn:
            finished = conn.execute(
                text(f"SELECT count(*) FROM \"{schema}\".runs WHERE status = 'succeeded'")
            ).scalar_one()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    result = {
        "runs_per_s": {n: round(statistics.median(rates), 1) for n, rates in per_count.items()},
        "claim_cost": cost,
        "meta": {
            "queued_at_start": QUEUED,
            "seconds_per_round": seconds,
            "rounds": rounds,
            "finished_rows_at_end": finished,
            "cpus": os.cpu_count(),
            "loadavg_1min": round(os.getloadavg()[0], 2),
        },
    }
    log(
        "the run queue on PostgreSQL, runs claimed and completed per second: "
        + ", ".join(f"{n} executor(s) {r}" for n, r in result["runs_per_s"].items())
    )
    log(
        f"a claim: {cost['claim_us']} µs; a bare UPDATE … RETURNING: "
        f"{cost['bare_update_returning_us']} µs ({cost['ratio']} times)"
    )
    return result


if __name__ == "__main__":
    import json

    figures = run(quick="--quick" in sys.argv)
    print(json.dumps(figures, indent=2))
