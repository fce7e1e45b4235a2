"""Fake upstream LLM APIs: real HTTP servers on 127.0.0.1 speaking OpenAI's chat completions
and Anthropic's messages wire formats, answering from scripts.

    with FakeUpstream("openai") as upstream:
        upstream.then(Script(text="Hi there"), Script(status=503))
        ... point a provider at upstream.base_url ...
        upstream.requests  # what the gateway sent (body and headers)

Each request takes the next queued ``Script`` (the last one repeats when the queue runs out, a
default answer when none was queued). A script answers whole or, for ``stream: true``, as the
format's SSE stream; it can wait before answering, pause between stream events, answer an error
status, call tools, report usage (cached tokens included) and fail mid-stream: cut the
connection after some events, or send the format's in-band error event.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

Api = Literal["openai", "anthropic"]


@dataclass(frozen=True)
class ToolUse:
    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Script:
    """One scripted answer."""

    text: str = "Hello from the fake upstream."
    tool_calls: tuple[ToolUse, ...] = ()
    status: int = 200
    error_message: str = "scripted failure"
    delay_s: float = 0.0  # before the answer starts
    event_delay_s: float = 0.0  # between stream events
    # Token counts as the upstream reports them: ``input_tokens`` is every input token,
    # ``cache_read`` and ``cache_write`` the parts of it read from and written to the
    # provider's prompt cache (reported the way each API does: OpenAI counts them inside
    # prompt_tokens, Anthropic beside input_tokens).
    input_tokens: int = 12
    output_tokens: int = 5
    cache_read: int = 0
    cache_write: int = 0
    stop_reason: str | None = None  # the format's own value; default from the content
    cut_after_events: int | None = None  # stream: drop the connection after this many events
    error_after_events: int | None = None  # stream: send the in-band error after this many
    model: str | None = None  # the model the upstream says answered (default: as asked)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class _Cut(Exception):
    """Raised inside a stream to drop the connection without finishing the response."""


class FakeUpstream:
    """One fake API server on 127.0.0.1 (a thread of its own)."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.requests: list[Received] = []
        self._scripts: list[Script] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    # ── control ─────────────────────────────────────────────────────────────────────────────

    def then(self, *scripts: Script) -> FakeUpstream:
        with self._lock:
            self._scripts.extend(scripts)
        return self

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.requests.clear()

    @property
    def base_url(self) -> str:
        """The provider's ``base_url`` as each SDK spells it (OpenAI's ends with ``/v1``)."""
        assert self._server is not None
        root = f"http://127.0.0.1:{self._server.server_port}"
        return root + "/v1" if self.api == "openai" else root

    def __enter__(self) -> FakeUpstream:
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self) -> Script:
        with self._lock:
            if not self._scripts:
                return Script()
            return self._scripts.pop(0) if len(self._scripts) > 1 else self._scripts[0]

    # ── the server ──────────────────────────────────────────────────────────────────────────

    def _app(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.method == "GET" and request.path.endswith("/models"):
            body = {"object": "list", "data": [{"id": "fake-model", "object": "model"}]}
            return _json(200, body)(environ, start_response)
        expected = "/v1/chat/completions" if self.api == "openai" else "/v1/messages"
        if request.method != "POST" or request.path != expected:
            return _json(404, {"error": {"message": f"no route {request.path}"}})(
                environ, start_response
            )
        body = json.loads(request.get_data() or b"{}")
        with self._lock:
            self.requests.append(Received(request.path, dict(request.headers), body))
        script = self._next()
        if script.delay_s:
            time.sleep(script.delay_s)
        if script.status != 200:
            return _json(script.status, self._error(script))(environ, start_response)
        model = script.model or body.get("model", "fake")
        if body.get("stream"):
            events = (
                self._openai_stream(script, model, body)
                if self.api == "openai"
                else self._anthropic_stream(script, model)
            )
            response = Response(
                _paced(events, script), status=200, content_type="text/event-stream"
            )
            return response(environ, start_response)
        whole = (
            self._openai_whole(script, model)
            if self.api == "openai"
            else self._anthropic_whole(script, model)
        )
        return _json(200, whole)(environ, start_response)

    def _error(self, script: Script) -> dict[str, Any]:
        if self.api == "openai":
            return {
                "error": {
                    "message": script.error_message,
                    "type": "api_error",
                    "param": None,
                    "code": None,
                }
            }
        return {"type": "error", "error": {"type": "api_error", "message": script.error_message}}

    # ── OpenAI ──────────────────────────────────────────────────────────────────────────────

    def _openai_usage(self, script: Script) -> dict[str, Any]:
        return {
            "prompt_tokens": script.input_tokens,
            "completion_tokens": script.output_tokens,
            "total_tokens": script.input_tokens + script.output_tokens,
            "prompt_tokens_details": {"cached_tokens": script.cache_read},
        }

    def _finish(self, script: Script) -> str:
        return script.stop_reason or ("tool_calls" if script.tool_calls else "stop")

    def _openai_whole(self, script: Script, model: str) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": script.text or None}
        if script.tool_calls:
            message["tool_calls"] = [
                {
                    "id": t.id,
                    "type": "function",
                    "function": {"name": t.name, "arguments": json.dumps(t.arguments)},
                }
                for t in script.tool_calls
            ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": self._finish(script)}],
            "usage": self._openai_usage(script),
        }

    def _openai_stream(self, script: Script, model: str, body: dict[str, Any]) -> Iterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            payload = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            return b"data: " + json.dumps(payload).encode() + b"\n\n"

        yield chunk({"role": "assistant", "content": ""})
        for word in _words(script.text):
            yield chunk({"content": word})
        for index, tool in enumerate(script.tool_calls):
            start = {
                "index": index,
                "id": tool.id,
                "type": "function",
                "function": {"name": tool.name, "arguments": ""},
            }
            yield chunk({"tool_calls": [start]})
            arguments = json.dumps(tool.arguments)
            half = len(arguments) // 2
            for fragment in (arguments[:half], arguments[half:]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
        yield chunk({}, self._finish(script))
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            usage = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [],
                "usage": self._openai_usage(script),
            }
            yield b"data: " + json.dumps(usage).encode() + b"\n\n"
        yield b"data: [DONE]\n\n"

    # ── Anthropic ───────────────────────────────────────────────────────────────────────────

    def _anthropic_usage(self, script: Script) -> dict[str, Any]:
        return {
            "input_tokens": script.input_tokens - script.cache_read - script.cache_write,
            "output_tokens": script.output_tokens,
            "cache_read_input_tokens": script.cache_read,
            "cache_creation_input_tokens": script.cache_write,
        }

    def _stop(self, script: Script) -> str:
        return script.stop_reason or ("tool_use" if script.tool_calls else "end_turn")

    def _anthropic_whole(self, script: Script, model: str) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if script.text:
            content.append({"type": "text", "text": script.text})
        content += [
            {"type": "tool_use", "id": t.id, "name": t.name, "input": t.arguments}
            for t in script.tool_calls
        ]
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._stop(script),
            "stop_sequence": None,
            "usage": self._anthropic_usage(script),
        }

    def _anthropic_stream(self, script: Script, model: str) -> Iterator[bytes]:
        def event(kind: str, payload: dict[str, Any]) -> bytes:
            return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

        usage = self._anthropic_usage(script)
        start = {**usage, "output_tokens": 1}
        message = {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start,
        }
        yield event("message_start", {"type": "message_start", "message": message})
        yield event("ping", {"type": "ping"})
        index = 0
        if script.text:
            yield event(
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            for word in _words(script.text):
                delta = {"type": "text_delta", "text": word}
                yield event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": 0, "delta": delta},
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": 0})
            index = 1
        for tool in script.tool_calls:
            block = {"type": "tool_use", "id": tool.id, "name": tool.name, "input": {}}
            yield event(
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
            arguments = json.dumps(tool.arguments)
            half = len(arguments) // 2
            for fragment in (arguments[:half], arguments[half:]):
                delta = {"type": "input_json_delta", "partial_json": fragment}
                yield event(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            yield event("content_block_stop", {"type": "content_block_stop", "index": index})
            index += 1
        yield event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop(script), "stop_sequence": None},
                "usage": {"output_tokens": script.output_tokens},
            },
        )
        yield event("message_stop", {"type": "message_stop"})


def _words(text: str) -> list[str]:
    """``text`` in pieces that join back to it: each word with the space before it."""
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]] if text else []


def _paced(events: Iterator[bytes], script: Script) -> Iterator[bytes]:
    """The stream's events with the script's pauses and failures applied."""
    for count, event in enumerate(events):
        if script.cut_after_events is not None and count >= script.cut_after_events:
            raise _Cut("scripted cut")  # the server drops the connection mid-response
        if script.error_after_events is not None and count >= script.error_after_events:
            if event.startswith(b"event:"):
                error = {"type": "error", "error": {"type": "overloaded_error", "message": "boom"}}
                yield f"event: error\ndata: {json.dumps(error)}\n\n".encode()
            else:
                error = {"error": {"message": "boom", "type": "server_error"}}
                yield f"data: {json.dumps(error)}\n\n".encode()
            return
        if count and script.event_delay_s:
            time.sleep(script.event_delay_s)
        yield event


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")
