"""Slow clients against a real ``gantry serve``: they cost a thread each until the read timeout,
never the server.

Ten clients each send the head of a POST with ``Content-Length: 100`` and one byte of its body,
then nothing (the attack that took the API down for a minute under sync workers); others trickle
a byte at a time, inside any per-read timeout; others send half a request line; others never
close their connection after a ``Connection: close`` answer. Meanwhile ``/api/v1/health`` answers
within the issue's promise of 1 s, and each slow request gets 408 problem+json (or a closed
connection), never before the read timeout.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import jsonschema
import pytest
import requests

from contract_tests.live import LiveServer
from tests.reliability.edge import address, backends, edge_server, read_response

READ_TIMEOUT_S = 2.0  # the server's, made short so the test is quick
SLOW_CLIENTS = 10
HEALTH_PROMISE_S = 1.0
# Every socket of this test gives up on its own well after the server should have answered.
SOCKET_TIMEOUT_S = READ_TIMEOUT_S + 15

SLOW_BODY_HEAD = (
    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
)


@pytest.fixture(scope="module", params=backends())
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    var_dir: Path = tmp_path_factory.mktemp(f"slow-{request.param}")
    with edge_server(
        request.param, var_dir, {"GANTRY_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    ) as live:
        yield live


def _connect(server: LiveServer, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(address(server), timeout=SOCKET_TIMEOUT_S)
    sock.sendall(first_bytes)
    return sock


def _health_latency(server: LiveServer) -> float:
    started = time.monotonic()
    response = requests.get(f"{server.api_url}/health", timeout=SOCKET_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    return elapsed


def _assert_timed_out(
    sock: socket.socket, opened: float, problem: jsonschema.Draft202012Validator
) -> None:
    """The slow request was answered 408 problem+json and closed, or just closed; not before
    the read timeout."""
    response = read_response(sock)
    waited = time.monotonic() - opened
    assert waited >= READ_TIMEOUT_S * 0.9, f"answered after {waited:.2f} s, before the timeout"
    if response.status == 0:
        return  # closed without an answer: allowed
    assert response.status == 408, (response.status, response.body[:300])
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    body = response.json()
    assert not list(problem.iter_errors(body)), body
    assert body["code"] == "request_timeout"
    assert body["request_id"] == response.headers["x-request-id"]
    assert sock.recv(1) == b"", "the connection stays open after a 408"


def test_slow_bodies_cost_a_thread_not_the_server(
    server: LiveServer, problem_validator: jsonschema.Draft202012Validator
) -> None:
    with ExitStack() as stack:
        opened = time.monotonic()
        slow = [stack.enter_context(_connect(server, SLOW_BODY_HEAD)) for _ in range(SLOW_CLIENTS)]
        latencies = [_health_latency(server) for _ in range(5)]
        assert max(latencies) < HEALTH_PROMISE_S, latencies
        for sock in slow:
            _assert_timed_out(sock, opened, problem_validator)
    assert _health_latency(server) < HEALTH_PROMISE_S


def test_a_trickling_client_gets_the_whole_request_deadline_not_one_per_read(
    server: LiveServer, problem_validator: jsonschema.Draft202012Validator
) -> None:
    """One byte every quarter of the timeout never lets a single read wait long enough to time
    out; the request as a whole still has to arrive within the read timeout."""
    with _connect(server, SLOW_BODY_HEAD) as sock:
        opened = time.monotonic()
        sock.settimeout(READ_TIMEOUT_S / 4)
        for _ in range(int(READ_TIMEOUT_S * 4 * 2)):  # twice as long as the deadline allows
            try:
                sock.sendall(b" ")
            except OSError:
                break  # the server has answered and closed
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the answer is here
            except TimeoutError:
                continue
        sock.settimeout(SOCKET_TIMEOUT_S)
        _assert_timed_out(sock, opened, problem_validator)


def test_a_slow_chunked_body_times_out(
    server: LiveServer, problem_validator: jsonschema.Draft202012Validator
) -> None:
    """A streamed body is read by Werkzeug rather than by Gantry's own reader: same deadline."""
    head = (
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"
    )
    with _connect(server, head) as sock:
        _assert_timed_out(sock, time.monotonic(), problem_validator)


def test_a_half_sent_request_line_times_out(
    server: LiveServer, problem_validator: jsonschema.Draft202012Validator
) -> None:
    with ExitStack() as stack:
        opened = time.monotonic()
        slow = [
            stack.enter_context(_connect(server, b"GET /api/v1/hea")) for _ in range(SLOW_CLIENTS)
        ]
        assert _health_latency(server) < HEALTH_PROMISE_S
        for sock in slow:
            _assert_timed_out(sock, opened, problem_validator)


def test_clients_that_never_close_do_not_stall_the_server(server: LiveServer) -> None:
    """A closing connection never waits for its client: ten clients that read their
    ``Connection: close`` answer but keep the socket open leave /health as quick as ever."""
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with ExitStack() as stack:
        lingering = [stack.enter_context(_connect(server, request)) for _ in range(SLOW_CLIENTS)]
        for sock in lingering:
            assert read_response(sock).status == 200
        latencies = [_health_latency(server) for _ in range(5)]
        assert max(latencies) < HEALTH_PROMISE_S, latencies
