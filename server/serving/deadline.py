"""A client socket whose reads share one deadline per request.

A per-``recv`` timeout alone lets a client trickle one byte just inside it, forever; the deadline
bounds the whole request instead: its headers and body must arrive within the read timeout of the
worker's first read of it (waiting for a first byte is gunicorn's business). Only the reads of a
request count; writes and the drain of a body the app left unread keep gunicorn's own timeouts.

Closing never waits for the client either. gunicorn closes a connection gracefully, on its event
loop's thread: it shuts down the sending side, then reads until the client closes or two seconds
pass, so that unread bytes do not turn the close into a reset. A client that never closes would
stall the event loop, and with it every other connection of the worker, for those two seconds,
once per connection. Here, once the sending side is shut down, a read takes only what has already
arrived and reports the end of the stream when nothing has.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from server.runtime.errors import RequestTimeout


class DeadlineSocket(socket.socket):
    """A connected socket with an optional deadline on its reads (``arm``/``disarm``).

    A read past the deadline raises ``RequestTimeout``, an ``ApiError``: not an ``OSError``, so
    no reader of ``wsgi.input`` mistakes it for a client that went away, and the app answers it
    as any other refusal (408 problem+json). The deadline fires once.
    """

    __slots__ = ("_budget", "_closing", "_deadline", "on_expiry")

    _budget: float | None
    _closing: bool
    _deadline: float | None
    on_expiry: Callable[[], None] | None

    @classmethod
    def adopt(cls, sock: socket.socket) -> DeadlineSocket:
        """Take over the connection of ``sock``, which must not be used afterwards."""
        blocking = sock.getblocking()
        adopted = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        adopted.setblocking(blocking)
        adopted._closing = False
        adopted.disarm()
        return adopted

    def arm(self, seconds: float) -> None:
        """Reads must complete within ``seconds`` of the next one."""
        self._budget = seconds
        self._deadline = None

    def disarm(self) -> None:
        """Reads wait as the socket's own timeout says again."""
        self._budget = self._deadline = None
        self.on_expiry = None

    def shutdown(self, how: int) -> None:
        super().shutdown(how)
        if how != socket.SHUT_RD:
            self._closing = True

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        if self._closing:
            return self._received(bufsize)
        if self._budget is None:
            return super().recv(bufsize, flags)
        deadline = self._deadline
        if deadline is None:
            deadline = self._deadline = time.monotonic() + self._budget
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._expire()
        self.settimeout(remaining)
        try:
            return super().recv(bufsize, flags)
        except TimeoutError:
            raise self._expire() from None
        finally:
            self.settimeout(None)  # writes block as before; only this read had the deadline

    def _received(self, bufsize: int) -> bytes:
        """What has arrived already, without waiting; ``b""`` when nothing has."""
        self.settimeout(0.0)
        try:
            return super().recv(bufsize)
        except (BlockingIOError, InterruptedError):
            return b""

    def _expire(self) -> RequestTimeout:
        on_expiry = self.on_expiry
        self.disarm()
        if on_expiry is not None:
            on_expiry()
        return RequestTimeout("The request was not received within the read timeout.")
