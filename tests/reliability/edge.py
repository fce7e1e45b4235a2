"""Helpers for the tests of the HTTP edge: a live ``gantry serve`` per database backend, and raw
HTTP/1.1 exchanges over a socket (what an HTTP client library would refuse to send)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from contract_tests.live import LiveServer, live_server
from contract_tests.pg import PostgresUnavailable, temporary_schema

PG_URL_ENV = "GANTRY_TEST_DATABASE_URL"
EDGE_TOKEN = "pat_" + "Reliability0Http0Edge0Token0012345678901"[:40]


def backends() -> list[str]:
    """SQLite always; PostgreSQL too when ``GANTRY_TEST_DATABASE_URL`` is set."""
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV, "").strip() else ["sqlite"]


@contextmanager
def edge_server(
    backend: str, var_dir: Path, environ: Mapping[str, str] | None = None
) -> Iterator[LiveServer]:
    """``gantry serve`` on ``backend``; an unusable PostgreSQL fails the test, never skips it."""
    with ExitStack() as stack:
        database_url = ""
        if backend == "postgresql":
            try:
                database_url = stack.enter_context(temporary_schema(os.environ[PG_URL_ENV]))
            except PostgresUnavailable as exc:
                pytest.fail(str(exc), pytrace=False)
        yield stack.enter_context(
            live_server(var_dir, EDGE_TOKEN, database_url=database_url, environ=environ)
        )


def address(server: LiveServer) -> tuple[str, int]:
    """Where ``server`` listens, for a raw socket."""
    host, _, port = server.base_url.removeprefix("http://").rpartition(":")
    return host, int(port)


@dataclass
class RawResponse:
    """One HTTP/1.1 response as read off the socket (``status`` 0: the connection closed
    without one)."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


def read_response(sock: socket.socket) -> RawResponse:
    """Read one response (its head, then ``Content-Length`` bytes or up to the close)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            if not data:
                return RawResponse(0, {}, b"")
            raise AssertionError(f"connection closed inside a response head: {data[:200]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "-1"))
    while length < 0 or len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return RawResponse(status, headers, body[:length] if length >= 0 else body)


def exchange(server: LiveServer, request: bytes, *, timeout: float = 30) -> RawResponse:
    """Send ``request`` as is on a new connection and read the answer."""
    with socket.create_connection(address(server), timeout=timeout) as sock:
        sock.sendall(request)
        return read_response(sock)
