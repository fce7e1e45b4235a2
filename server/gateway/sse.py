"""Server-sent events: framing what the gateway sends, and reading what upstreams send.

OpenAI's SDK reads ``data:`` lines and stops at ``data: [DONE]``; Anthropic's SDK needs an
``event:`` line before each ``data:`` line. Both ignore comment lines, which keep an idle stream
open through proxies (``KEEP_ALIVE``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

KEEP_ALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"


def data(payload: Any) -> bytes:
    """One ``data:`` event carrying ``payload`` as JSON."""
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def event(kind: str, payload: Any) -> bytes:
    """One typed event: ``event: <kind>`` then its ``data:``."""
    return b"event: " + kind.encode() + b"\n" + data(payload)


@dataclass(frozen=True)
class Event:
    """One event read off a stream: its type (``None`` without an ``event:`` line) and data."""

    kind: str | None
    data: str


def read_events(chunks: Iterable[bytes]) -> Iterator[Event]:
    """The events of an SSE byte stream, however its bytes are split into chunks."""
    buffer = b""
    kind: str | None = None
    lines: list[str] = []
    for chunk in chunks:
        buffer += chunk
        while True:
            cut = _line_end(buffer)
            if cut is None:
                break
            end, width = cut
            line = buffer[:end].decode("utf-8")
            buffer = buffer[end + width :]
            if not line:
                if lines:
                    yield Event(kind, "\n".join(lines))
                kind, lines = None, []
            elif line.startswith(":"):
                continue
            else:
                field, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if field == "event":
                    kind = value
                elif field == "data":
                    lines.append(value)
    if lines:  # a last event without its blank line
        yield Event(kind, "\n".join(lines))


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first line of ``buffer`` ends and how wide its terminator is (LF, CRLF, CR)."""
    lf = buffer.find(b"\n")
    cr = buffer.find(b"\r")
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # a CR that may be the first half of a CRLF
    return (cr, 2) if buffer[cr + 1 : cr + 2] == b"\n" else (cr, 1)
