"""The request log's background writer: calls are written after their responses, off the
threads that serve clients, many to a transaction.

A ``RecordQueue`` is a ``Recorder`` that only queues. A thread of its own takes the finished
calls in the order they were queued and hands them to a ``BatchRecorder`` together: the calls
that finish within ``linger`` seconds of the first one (at most ``batch`` of them) share one
transaction. A thread that serves a keep-alive connection goes back to the client's next
request at once, and a busy server opens one log transaction per batch, not one per call.

When the batch is written matters on SQLite, where every writer takes the one database lock
and a writer that finds it taken sleeps a millisecond or more before it tries again: a log
write that begins as a request of the same process reaches for the lock delays that request by
such a sleep. So the writer then waits, up to ``idle_wait`` seconds, for ``database_idle``: the
engine's word that a call has done its database work and now waits on an upstream.

Nothing queued is lost on a normal shutdown: ``close`` (run at interpreter exit, and by tests)
writes what is queued before it returns, and ``flush`` writes it without waiting. The writer
thread is started by the first call of each process (a forked child starts afresh), so a
server that builds its app before forking its workers gets one writer per worker. When the
writer falls far behind (``capacity`` calls queued), a call waits for room rather than
dropping its entry.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Protocol

from server.gateway.cache import CachedAnswer
from server.gateway.record import CallRecord, Finished

log = logging.getLogger("gantry.gateway")

BATCH = 100
CAPACITY = 10_000
LINGER_S = 0.05
IDLE_WAIT_S = 0.02
CLOSE_TIMEOUT_S = 10.0


class BatchRecorder(Protocol):
    """Writes finished calls, several at once (``LogRecorder``)."""

    def record_all(self, finished: Sequence[Finished]) -> None: ...


class _Signal:
    """A marker in the queue: write what came before it now (``flush``), then stop (``close``)."""

    def __init__(self, *, stop: bool) -> None:
        self.stop = stop


class RecordQueue:
    """``Recorder`` that queues each call for a writer thread (see the module doc)."""

    def __init__(
        self,
        target: BatchRecorder,
        *,
        batch: int = BATCH,
        linger: float = LINGER_S,
        idle_wait: float = IDLE_WAIT_S,
        capacity: int = CAPACITY,
    ) -> None:
        self.target = target
        self.batch = batch
        self.linger = linger
        self.idle_wait = idle_wait
        self.capacity = capacity
        self._reset()
        _QUEUES.add(self)

    def _reset(self) -> None:
        """Fresh state (a forked child inherits its parent's queue, but not its thread)."""
        self._items: queue.Queue[Finished | _Signal] = queue.Queue(maxsize=self.capacity)
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._queued = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()

    def record(
        self, call: CallRecord, *, cache_save: CachedAnswer | None, cache_hit: str | None
    ) -> None:
        self._start()
        with self._lock:
            self._queued += 1
        self._items.put(Finished(call, cache_save, cache_hit))

    def database_idle(self) -> None:
        """A call of this process has done its database work for now: a moment to write."""
        self._idle.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Write every call queued so far, now; ``False`` if ``timeout`` passed first."""
        with self._lock:
            target = self._queued
            if self._done >= target:
                return True
        self._items.put(_Signal(stop=False))
        with self._lock:
            return self._written.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued, then stop the writer (a later call starts it again)."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._items.put(_Signal(stop=True))
        thread.join(timeout)
        if thread.is_alive():
            log.warning("the gateway's request log writer did not finish within %s s", timeout)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._drain, args=(self._items,), name="gateway-log", daemon=True
                )
                self._thread.start()

    def _drain(self, items: queue.Queue[Finished | _Signal]) -> None:
        while True:
            first = items.get()
            if isinstance(first, _Signal):
                if first.stop:
                    return
                continue
            batch, signal = self._collect(items, first)
            if signal is None:
                self._idle.clear()
                self._idle.wait(self.idle_wait)
            self._write(batch)
            if signal is not None and signal.stop:
                return

    def _collect(
        self, items: queue.Queue[Finished | _Signal], first: Finished
    ) -> tuple[list[Finished], _Signal | None]:
        """The calls that follow ``first`` within ``linger`` (up to ``batch``), and the signal
        that cut the wait short, if one did."""
        batch = [first]
        deadline = time.monotonic() + self.linger
        while len(batch) < self.batch:
            remaining = deadline - time.monotonic()
            try:
                item = items.get(timeout=remaining) if remaining > 0 else items.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Signal):
                return batch, item
            batch.append(item)
        return batch, None

    def _write(self, batch: list[Finished]) -> None:
        try:
            self.target.record_all(batch)
        except Exception:  # the writer outlives any one batch; the calls were answered
            log.exception("gateway calls not recorded: %s", ", ".join(f.call.id for f in batch))
        finally:
            with self._lock:
                self._done += len(batch)
                self._written.notify_all()


# Every queue of the process, for the fork and exit hooks.
_QUEUES: weakref.WeakSet[RecordQueue] = weakref.WeakSet()


def _forget_parent_writers() -> None:
    """In a forked child: the parent's writer threads did not come along."""
    for pending in list(_QUEUES):
        pending._reset()


@atexit.register
def _close_all() -> None:
    """At interpreter exit (a worker's normal shutdown included): write what is queued."""
    for pending in list(_QUEUES):
        pending.close()


os.register_at_fork(after_in_child=_forget_parent_writers)
