"""``GantryWorker``: gunicorn's threaded worker with a read deadline per request and refusals in
problem+json.

Threads, not processes, hold connections: a client that is slow to send, or a stream the app keeps
open (server-sent events), occupies one thread of a worker and never the worker itself, and
gunicorn's event loop keeps idle keep-alive connections without a thread at all. Each request must
arrive, headers and body, within the read timeout of the worker's first read of it
(``DeadlineSocket``); a late one is answered 408 problem+json and its connection closed.

A connection taken over for something else than HTTP requests (a WebSocket) must ``disarm`` its
socket's deadline once the handshake is read.
"""

from __future__ import annotations

from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import TConn, ThreadWorker

from server.runtime.errors import ApiError
from server.serving.deadline import DeadlineSocket
from server.serving.refusal import error_for_status, problem_message

DEFAULT_READ_TIMEOUT_S = 10.0

# What the client is told for each of gunicorn's refusals. Never the request's own bytes: a
# malformed request line may carry a credential.
_DETAILS: dict[type[BaseException], str] = {
    http_errors.InvalidRequestLine: "The request line is not valid HTTP.",
    http_errors.InvalidRequestMethod: "The request method is not valid.",
    http_errors.InvalidHTTPVersion: "The HTTP version is not supported.",
    http_errors.InvalidHeader: "A request header is not valid (or contradicts another).",
    http_errors.InvalidHeaderName: "A request header name is not valid.",
    http_errors.ObsoleteFolding: "Obsolete line folding in a request header is not accepted.",
    http_errors.LimitRequestLine: "The request line is too long.",
    http_errors.LimitRequestHeaders: "The request headers are too many or too large.",
    http_errors.UnsupportedTransferCoding: "The request's Transfer-Encoding is not supported.",
    http_errors.ExpectationFailed: "The request's Expect header cannot be met.",
    http_errors.InvalidChunkSize: "A chunk of the request body is malformed.",
    http_errors.ChunkMissingTerminator: "A chunk of the request body is malformed.",
    http_errors.InvalidChunkExtension: "A chunk of the request body is malformed.",
}


class GantryWorker(ThreadWorker):  # type: ignore[misc]
    """The worker ``gantry serve`` runs (see the module)."""

    read_timeout_s = DEFAULT_READ_TIMEOUT_S

    def init_process(self) -> None:
        # ``gantry serve``'s application object carries the setting; any other keeps the default.
        self.read_timeout_s = float(getattr(self.app, "read_timeout_s", self.read_timeout_s))
        super().init_process()

    def handle(self, conn: TConn) -> Any:
        """Serve one request of ``conn``; its reads share the read deadline."""
        if not isinstance(conn.sock, DeadlineSocket) and not conn.initialized:
            conn.sock = DeadlineSocket.adopt(conn.sock)  # before gunicorn's parser holds it
        sock = conn.sock
        if not isinstance(sock, DeadlineSocket):
            return super().handle(conn)
        sock.arm(self.read_timeout_s)
        try:
            return super().handle(conn)
        finally:
            sock.disarm()

    def handle_request(self, req: Any, conn: TConn) -> bool:
        sock = conn.sock
        if isinstance(sock, DeadlineSocket):
            # A body that arrives too late is answered by the app; that answer closes.
            sock.on_expiry = req.force_close
        try:
            keepalive: bool = super().handle_request(req, conn)
        finally:
            if isinstance(sock, DeadlineSocket):
                sock.disarm()  # the response, the drain and the close keep their own timeouts
        return keepalive

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer what stopped gunicorn from reading or serving a request as problem+json."""
        if isinstance(exc, ApiError):  # the read deadline, while reading the request's head
            self.log.info("Request not read in time from ip=%s", (addr or ("",))[0])
            error = exc
        else:
            # gunicorn logs the refusal (and its access line) and picks the status.
            captured = _Captured()
            super().handle_error(req, captured, addr, exc)
            error = error_for_status(captured.status())
            detail = _DETAILS.get(type(exc))
            if detail is not None and error.status != 500:
                error.detail = detail
        try:
            write_nonblock(client, problem_message(error))
        except Exception:  # the client is gone: nothing to tell it
            self.log.debug("Failed to send error message.")


class _Captured:
    """Stands in for the client socket while gunicorn writes its own error page."""

    def __init__(self) -> None:
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn then writes with a plain ``sendall``

    def sendall(self, data: bytes) -> None:
        self.data += data

    def status(self) -> int:
        """The status gunicorn answered with (500 if it wrote nothing readable)."""
        parts = self.data.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 500
