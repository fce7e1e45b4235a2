"""One connection pool per process under ``gantry serve``.

The gunicorn master builds the app before it forks its two workers (it migrates and bootstraps
there), so any connection it still held would be inherited by both: two processes writing one
protocol stream. These tests load a real server and then look at the processes themselves,
through ``/proc``: which sockets to PostgreSQL (or handles on the SQLite file) each one holds.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from contract_tests.live import LiveServer, live_server
from tests.conftest import BOOTSTRAP_TOKEN

CLIENTS = 4
REQUESTS = 1000
WORKERS = 2
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")
_MASTER = re.compile(r"\[(\d+)\] \[INFO\] Starting gunicorn")


@pytest.fixture
def served(database_url: str, tmp_path: Path) -> Iterator[tuple[LiveServer, str]]:
    """``gantry serve`` (gunicorn, two workers, the app preloaded) over this test's database."""
    with live_server(tmp_path, BOOTSTRAP_TOKEN, database_url=database_url) as server:
        yield server, database_url


def _load(server: LiveServer) -> Counter[int]:
    """``REQUESTS`` authenticated reads from ``CLIENTS`` clients at once; the statuses."""
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS, timeout=30)

    def client() -> None:
        seen: Counter[int] = Counter()
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {server.token}"
            # A connection per request, so both workers take their share of them.
            http.headers["Connection"] = "close"
            start.wait()
            for _ in range(REQUESTS // CLIENTS):
                seen[http.get(f"{server.api_url}/auth/me", timeout=30).status_code] += 1
        with lock:
            statuses.update(seen)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(thread.is_alive() for thread in threads), "a client did not finish"
    return statuses


def _processes(server: LiveServer) -> tuple[int, list[int]]:
    """The master's pid and its workers' pids, from gunicorn's log."""
    deadline = time.monotonic() + 30
    while True:
        log = server.log.read_text()
        workers = [int(pid) for pid in _BOOTED.findall(log)]
        master = _MASTER.search(log)
        if master is not None and len(workers) >= WORKERS:
            return int(master.group(1)), workers
        assert time.monotonic() < deadline, f"workers did not boot:\n{log}"
        time.sleep(0.1)


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:[") : -1]))
    return inodes


def _tcp_local_ports(remote_port: int) -> dict[int, int]:
    """Socket inode -> local port, for the TCP connections to ``remote_port``."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if int(remote.rsplit(":", 1)[1], 16) == remote_port:
                found[inode] = int(local.rsplit(":", 1)[1], 16)
    return found


def _database_handles(pid: int, database_url: str) -> set[int]:
    """What ``pid`` holds open on the database: socket inodes to PostgreSQL, or the file
    descriptors of the SQLite file."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        database = Path(url.database or "").resolve()
        handles = set()
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if Path(fd.readlink()) == database:
                    handles.add(int(fd.name))
            except OSError:
                continue
        return handles
    to_postgres = _tcp_local_ports(url.port or 5432)
    return {inode for inode in _socket_inodes(pid) if inode in to_postgres}


def test_two_workers_serve_a_thousand_reads_each_over_its_own_connections(
    served: tuple[LiveServer, str],
) -> None:
    server, database_url = served
    assert _load(server) == Counter({200: REQUESTS})  # no error, not one
    master, workers = _processes(server)
    held = {pid: _database_handles(pid, database_url) for pid in [master, *workers]}
    # The master closed what migrating and bootstrapping opened before it forked.
    assert held[master] == set(), held
    assert all(held[pid] for pid in workers), held  # both served, each over its own
    if make_url(database_url).get_backend_name() != "postgresql":
        return
    # A socket inherited across the fork would be the same inode in two processes.
    first, second = (held[pid] for pid in workers)
    assert not first & second, held
    ports = _tcp_local_ports(make_url(database_url).port or 5432)
    client_ports = [ports[inode] for pid in workers for inode in held[pid]]
    backends = _backends_at(database_url, client_ports)
    assert len(set(backends.values())) == len(client_ports), backends


def _backends_at(database_url: str, client_ports: list[int]) -> dict[int, int]:
    """Client port -> PostgreSQL backend pid, for the connections from these ports."""
    engine = create_engine(make_url(database_url), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT client_port, pid FROM pg_stat_activity WHERE client_port = ANY(:ports)"
                ),
                {"ports": client_ports},
            ).all()
    finally:
        engine.dispose()
    return {int(port): int(pid) for port, pid in rows}
