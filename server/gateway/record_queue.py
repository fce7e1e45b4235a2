"""The request log's background writer: calls are written after their responses, off the
threads that serve clients.

A ``RecordQueue`` is a ``Recorder`` that only queues: a thread of its own takes the finished
calls in the order they were queued and hands them to a ``BatchRecorder``, as many as are
waiting (up to ``batch``) at a time, so under load one transaction writes many entries. A
thread that serves a keep-alive connection goes back to reading the client's next request at
once, instead of first taking the database's write lock for the log.

Nothing queued is lost on a normal shutdown: ``close`` (run at interpreter exit, and by tests)
writes what is queued before it returns. The writer thread is started by the first call of
each process (a forked child starts afresh), so a server that builds its app before forking
its workers gets one writer per worker. When the writer falls far behind (``capacity`` calls
queued), a call waits for room rather than dropping its entry.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import weakref
from collections.abc import Sequence
from typing import Protocol

from server.gateway.cache import CachedAnswer
from server.gateway.record import CallRecord, Finished

log = logging.getLogger("gantry.gateway")

BATCH = 64
CAPACITY = 10_000
CLOSE_TIMEOUT_S = 10.0


class BatchRecorder(Protocol):
    """Writes finished calls, several at once (``LogRecorder``)."""

    def record_all(self, finished: Sequence[Finished]) -> None: ...


_STOP = object()


class RecordQueue:
    """``Recorder`` that queues each call for a writer thread (see the module doc)."""

    def __init__(
        self, target: BatchRecorder, *, batch: int = BATCH, capacity: int = CAPACITY
    ) -> None:
        self.target = target
        self.batch = batch
        self.capacity = capacity
        self._reset()
        _QUEUES.add(self)

    def _reset(self) -> None:
        """Fresh state (a forked child inherits its parent's queue, but not its thread)."""
        self._items: queue.Queue[object] = queue.Queue(maxsize=self.capacity)
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._queued = 0
        self._done = 0
        self._thread: threading.Thread | None = None

    def record(
        self, call: CallRecord, *, cache_save: CachedAnswer | None, cache_hit: str | None
    ) -> None:
        self._start()
        with self._lock:
            self._queued += 1
        self._items.put(Finished(call, cache_save, cache_hit))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every call queued so far is written; ``False`` if ``timeout`` passed
        first."""
        with self._lock:
            target = self._queued
            return self._written.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float = CLOSE_TIMEOUT_S) -> None:
        """Write what is queued, then stop the writer (a later call starts it again)."""
        with self._lock:
            thread = self._thread
            self._thread = None
        if thread is None:
            return
        self._items.put(_STOP)
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

    def _drain(self, items: queue.Queue[object]) -> None:
        while True:
            first = items.get()
            if first is _STOP:
                return
            batch = [first]
            stop = False
            while len(batch) < self.batch:
                try:
                    item = items.get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            self._write([item for item in batch if isinstance(item, Finished)])
            if stop:
                return

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
