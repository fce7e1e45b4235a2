"""The four benchmark requests, and direct WSGI / ASGI calls that send them in-process.

No test client: a WSGI app is called with a prebuilt environ (copied per call, with a fresh
``wsgi.input``), an ASGI app with a prebuilt scope on one long-lived event loop. What is timed is
the framework and the handler work, not a client library.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from werkzeug.test import EnvironBuilder

from bench.contract import handlers

REQUESTS = ("list", "get", "create", "invalid")
EXPECTED_STATUS = {"list": 200, "get": 200, "create": 201, "invalid": 400}

CREATE_BODY = {
    "name": "widget",
    "price": 9.5,
    "tags": ["blue", "small"],
    "quantity": 3,
    "description": "a blue widget",
}
# Breaks the schema four ways (no name, negative price, empty tag, quantity not an integer);
# the floor, which validates nothing, still rejects it for the missing name.
INVALID_BODY = {"price": -1, "tags": [""], "quantity": "many"}


@dataclass(frozen=True)
class BenchRequest:
    """One request as raw HTTP parts."""

    name: str
    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def target(self) -> str:
        return f"{self.path}?{self.query}" if self.query else self.path


def second_page_cursor() -> str:
    """The cursor of the second page (what a client following ``next_cursor`` sends)."""
    cursor = handlers.list_items(handlers.PAGE_SIZE, None)["next_cursor"]
    assert isinstance(cursor, str)
    return cursor


def bench_requests() -> dict[str, BenchRequest]:
    """list (a 20-item page after a cursor), get, create, invalid create."""
    auth = ("Authorization", handlers.AUTHORIZATION)
    json_headers = (auth, ("Content-Type", "application/json"))
    query = urlencode({"limit": handlers.PAGE_SIZE, "cursor": second_page_cursor()})
    return {
        "list": BenchRequest("list", "GET", "/bench/v1/items", query, (auth,), b""),
        "get": BenchRequest("get", "GET", "/bench/v1/items/itm_00000010", "", (auth,), b""),
        "create": BenchRequest(
            "create", "POST", "/bench/v1/items", "", json_headers, json.dumps(CREATE_BODY).encode()
        ),
        "invalid": BenchRequest(
            "invalid",
            "POST",
            "/bench/v1/items",
            "",
            json_headers,
            json.dumps(INVALID_BODY).encode(),
        ),
    }


Call = Callable[[], tuple[int, bytes]]


def wsgi_caller(app: Any, req: BenchRequest) -> Call:
    """A zero-argument function that sends ``req`` to the WSGI ``app``: (status, body)."""
    builder = EnvironBuilder(
        path=req.path,
        method=req.method,
        query_string=req.query,
        headers=list(req.headers),
        data=req.body or None,
        base_url="http://127.0.0.1",
    )
    template = builder.get_environ()
    builder.close()
    body = req.body
    status_box: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        status_box.append(status)
        return None

    def call() -> tuple[int, bytes]:
        environ = dict(template)
        environ["wsgi.input"] = io.BytesIO(body)
        status_box.clear()
        result = app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return int(status_box[0].split(" ", 1)[0]), data

    return call


class AsgiRunner:
    """One event loop for every in-process call to an ASGI app."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def caller(self, app: Any, req: BenchRequest) -> Call:
        """A zero-argument function that sends ``req`` to the ASGI ``app``: (status, body)."""
        scope_template: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": req.method,
            "scheme": "http",
            "path": req.path,
            "raw_path": req.path.encode(),
            "query_string": req.query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in req.headers]
            + [(b"host", b"127.0.0.1"), (b"content-length", str(len(req.body)).encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        body = req.body
        loop = self.loop

        async def run() -> tuple[int, bytes]:
            sent = False
            status = 0
            chunks: list[bytes] = []

            async def receive() -> dict[str, Any]:
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                await asyncio.sleep(3600)  # the client never disconnects mid-request
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                elif message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            await app(dict(scope_template, headers=list(scope_template["headers"])), receive, send)
            return status, b"".join(chunks)

        def call() -> tuple[int, bytes]:
            return loop.run_until_complete(run())

        return call
