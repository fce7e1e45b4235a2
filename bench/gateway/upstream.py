"""The benchmark's upstream: a minimal, fast OpenAI-format chat completions server.

One asyncio process on 127.0.0.1 with HTTP/1.1 keep-alive, answering every
``POST .../chat/completions`` with the same tiny completion, or, for ``"stream": true``, the
same short SSE stream (a role chunk, four content chunks, the finish chunk, a usage chunk when
``stream_options.include_usage`` asks for one, ``[DONE]``) written at once in chunked
transfer encoding. Every answer is prebuilt bytes, so what the upstream costs per request is
little more than reading it: the floor the three ways of calling it are measured against,
and the same upstream for all of them.

    python -m bench.gateway.upstream --port 8500
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from typing import Any

MODEL = "bench-model"
CREATED = 1_700_000_000
TEXT_PIECES = ("Hello", " from", " the", " bench.")
USAGE = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}


def _http(status: str, content_type: str, body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


def _completion() -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion",
        "created": CREATED,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "".join(TEXT_PIECES)},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    return _http("200 OK", "application/json", json.dumps(body).encode())


def _stream(include_usage: bool) -> bytes:
    def chunk(choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": MODEL,
            "choices": choices,
            **extra,
        }

    def delta(content: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish}])

    events = [delta({"role": "assistant", "content": ""})]
    events += [delta({"content": piece}) for piece in TEXT_PIECES]
    events.append(delta({}, "stop"))
    if include_usage:
        events.append(chunk([], usage=USAGE))
    frames = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events]
    frames.append(b"data: [DONE]\n\n")
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
    )
    body = b"".join(b"%x\r\n%s\r\n" % (len(f), f) for f in frames) + b"0\r\n\r\n"
    return head + body


COMPLETION = _completion()
STREAM = _stream(include_usage=False)
STREAM_WITH_USAGE = _stream(include_usage=True)
MODELS = _http(
    "200 OK",
    "application/json",
    json.dumps(
        {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "bench"}]}
    ).encode(),
)
NOT_FOUND = _http("404 Not Found", "application/json", b'{"error":{"message":"not found"}}')
BAD_REQUEST = _http("400 Bad Request", "application/json", b'{"error":{"message":"bad json"}}')


def answer(head: bytes, body: bytes) -> bytes:
    """The prebuilt answer to one request (``head``: request line and headers, lower-cased)."""
    line = head.split(b"\r\n", 1)[0]
    if line.startswith(b"post ") and b"/chat/completions" in line:
        try:
            request = json.loads(body)
        except ValueError:
            return BAD_REQUEST
        if not request.get("stream"):
            return COMPLETION
        options = request.get("stream_options") or {}
        return STREAM_WITH_USAGE if options.get("include_usage") else STREAM
    if line.startswith(b"get ") and b"/models" in line:
        return MODELS
    return NOT_FOUND


def _content_length(head: bytes) -> int:
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    end = head.find(b"\r\n", at + 2)
    return int(head[at + 17 : end if end >= 0 else len(head)].strip())


class _Connection(asyncio.Protocol):
    """One client connection: requests parsed from the buffer as they complete."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            total = end + 4 + _content_length(head)
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self.transport.write(answer(head, body))
            if b"\r\nconnection: close" in head:
                self.transport.close()
                return


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Connection, host, port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
