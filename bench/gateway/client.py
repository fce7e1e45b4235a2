"""A lean sequential HTTP/1.1 client for latency and time to first byte.

One keep-alive socket, one request at a time, every sample kept (percentiles are taken over the
samples of all rounds together, not averaged from each round's). A request is prebuilt bytes;
the answer is read just far enough to know where it ends (``Content-Length`` or chunked
framing), so what the client costs per request is small and the same for every target, and
cancels out of the latency a gateway adds over the floor. Only 127.0.0.1 is addressed, and
every run stops by itself (a duration and a request count).
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

HOST = "127.0.0.1"
TIMEOUT_S = 10.0


def http_request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    """A keep-alive POST as raw bytes."""
    lines = [f"POST {path} HTTP/1.1", f"Host: {HOST}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@dataclass
class Samples:
    """Milliseconds per request: to the whole answer, and to its first ``data:`` line (streams)."""

    total_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def extend(self, other: Samples) -> None:
        self.total_ms += other.total_ms
        self.first_ms += other.first_ms
        self.errors += other.errors
        for status, count in other.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + count


class _Closed(Exception):
    """The server closed the connection before the answer ended."""


class Connection:
    """One keep-alive connection that sends prebuilt requests and times their answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buffer = b""

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port), timeout=TIMEOUT_S)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.buffer = b""
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _more(self) -> None:
        assert self.sock is not None
        data = self.sock.recv(65536)
        if not data:
            raise _Closed
        self.buffer += data

    def _line(self) -> bytes:
        while (end := self.buffer.find(b"\r\n")) < 0:
            self._more()
        line, self.buffer = self.buffer[:end], self.buffer[end + 2 :]
        return line

    def _take(self, count: int) -> bytes:
        while len(self.buffer) < count:
            self._more()
        taken, self.buffer = self.buffer[:count], self.buffer[count:]
        return taken

    def call(self, request: bytes) -> tuple[int, float, float | None]:
        """Send ``request``; returns the status, seconds to the whole answer and seconds to the
        first body chunk that carries an SSE ``data:`` line (None when none came)."""
        sock = self._connect()
        start = time.perf_counter()
        sock.sendall(request)
        status = int(self._line().split(b" ", 2)[1])
        length, chunked, close = None, False, False
        while line := self._line():
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        first: float | None = None
        if chunked:
            while size := int(self._line().split(b";", 1)[0], 16):
                chunk = self._take(size + 2)
                if first is None and b"data:" in chunk:
                    first = time.perf_counter() - start
            while self._line():  # trailers, then the empty line
                pass
        elif length is not None:
            body = self._take(length)
            if b"data:" in body:
                first = time.perf_counter() - start
        else:  # delimited by the close
            try:
                while True:
                    self._more()
            except _Closed:
                close = True
        total = time.perf_counter() - start
        if close:
            self.close()
        return status, total, first


def run_sequential(
    port: int,
    request: bytes,
    *,
    duration_s: float,
    max_requests: int,
    min_requests: int = 0,
    expected: int = 200,
) -> Samples:
    """Requests one after another on one connection for ``duration_s``, and on until
    ``min_requests`` for a slow target (at most four times as long); never over
    ``max_requests``."""
    samples = Samples()
    connection = Connection(port)
    start = time.perf_counter()
    stop_at, hard_stop = start + duration_s, start + 4 * duration_s
    try:
        for count in range(max_requests):
            now = time.perf_counter()
            if now >= hard_stop or (now >= stop_at and count >= min_requests):
                break
            try:
                status, total, first = connection.call(request)
            except (OSError, _Closed, ValueError, IndexError):
                samples.errors += 1
                connection.close()
                continue
            samples.statuses[status] = samples.statuses.get(status, 0) + 1
            if status != expected:
                samples.errors += 1
                continue
            samples.total_ms.append(total * 1000)
            if first is not None:
                samples.first_ms.append(first * 1000)
    finally:
        connection.close()
    return samples


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (nearest rank); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]
