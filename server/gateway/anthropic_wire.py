"""The Anthropic messages wire format, read into and written from ``server.gateway.chat``.

Requests, whole messages, the stream (an ``event:`` line before every ``data:`` line:
``message_start``, per content block ``content_block_start`` / ``content_block_delta``
(``text_delta``, ``input_json_delta`` for tool input) / ``content_block_stop``, then
``message_delta`` with the stop reason and usage, ``message_stop``) and the error envelope
``{"type": "error", "error": {type, message}}``. Anthropic's ``input_tokens`` excludes the
prompt cache's reads and writes, which it reports beside it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from server.gateway.chat import (
    ChatRequest,
    ChatResult,
    Finish,
    ImagePart,
    Message,
    Part,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    Tool,
    ToolArgumentsDelta,
    ToolCall,
    ToolCallStart,
    ToolChoice,
    ToolResult,
    Usage,
    UsageReport,
)
from server.gateway.errors import GatewayError, invalid

DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; used for requests that had none
API_VERSION = "2023-06-01"

_MODELLED = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "stream",
    }
)
_STOP_OF_REASON: dict[str, StopReason] = {
    "end_turn": "end",
    "pause_turn": "end",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "refusal": "content_filter",
}
_REASON_OF_STOP: dict[StopReason, str] = {
    "end": "end_turn",
    "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence",
    "tool_use": "tool_use",
    "content_filter": "refusal",
}
_ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "upstream": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "api_error",
}


# ── requests ────────────────────────────────────────────────────────────────────────────────


def _text_of(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "text":
                texts.append(str(block.get("text", "")))
            elif not (isinstance(block, Mapping) and block.get("type") == "image"):
                raise invalid(f"{where} may only hold text blocks.", param=where)
        return "".join(texts)
    raise invalid(f"{where} must be a string or a list of blocks.", param=where)


def _image_of(block: Mapping[str, Any], where: str) -> ImagePart:
    source = block.get("source")
    if isinstance(source, Mapping) and source.get("type") == "base64":
        return ImagePart(data=str(source.get("data")), media_type=str(source.get("media_type")))
    if isinstance(source, Mapping) and source.get("type") == "url":
        return ImagePart(url=str(source.get("url")))
    raise invalid(f"{where}.source must be a base64 or url image source.", param=where)


def _parts(content: Any, role: str, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(f"{where} must be a string or a list of blocks.", param=where)
    parts: list[Part] = []
    for i, block in enumerate(content):
        kind = block.get("type") if isinstance(block, Mapping) else None
        at = f"{where}[{i}]"
        if kind == "text":
            parts.append(TextPart(str(block.get("text", ""))))
        elif kind == "image":
            parts.append(_image_of(block, at))
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            parts.append(ToolCall(str(block.get("id")), str(block.get("name")), arguments))
        elif kind == "tool_result" and role == "user":
            parts.append(
                ToolResult(
                    str(block.get("tool_use_id")),
                    _text_of(block.get("content"), f"{at}.content"),
                    bool(block.get("is_error")),
                )
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # the model's own reasoning: not carried to another model
        else:
            raise invalid(f"{at} has an unsupported type {kind!r}.", param=where)
    return parts


def parse_request(body: Mapping[str, Any]) -> ChatRequest:
    """A messages request body as a ``ChatRequest``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required", param="model")
    raw = body.get("messages")
    if not isinstance(raw, list) or not raw:
        raise invalid("messages: at least one message is required", param="messages")
    messages = []
    for i, message in enumerate(raw):
        where = f"messages.{i}"
        role = message.get("role") if isinstance(message, Mapping) else None
        if role not in ("user", "assistant"):
            raise invalid(f"{where}.role must be 'user' or 'assistant'.", param=where)
        messages.append(Message(role, tuple(_parts(message.get("content"), role, where))))
    tools = []
    for i, tool in enumerate(body.get("tools") or []):
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            raise invalid(f"tools.{i} needs a name.", param="tools")
        schema = tool.get("input_schema")
        tools.append(
            Tool(
                tool["name"],
                tool.get("description"),
                schema if isinstance(schema, Mapping) else {"type": "object"},
            )
        )
    max_tokens = body.get("max_tokens")
    stops = body.get("stop_sequences")
    system = body.get("system")
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        system=_text_of(system, "system") if system else None,
        tools=tuple(tools),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")),
        stop=tuple(str(s) for s in stops) if isinstance(stops, list) else (),
        stream=bool(body.get("stream")),
        include_usage=True,  # an Anthropic stream always carries its usage
        source="anthropic",
        extra={k: v for k, v in body.items() if k not in _MODELLED},
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tool_choice(value: Any) -> ToolChoice | None:
    if not isinstance(value, Mapping):
        return None
    kind = value.get("type")
    if kind == "any":
        return ToolChoice("required")
    if kind == "tool" and isinstance(value.get("name"), str):
        return ToolChoice("tool", value["name"])
    if kind in ("auto", "none"):
        return ToolChoice(kind)
    return None


def _arguments(text: str) -> Any:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        raise invalid("A tool call's arguments are not valid JSON.") from None
    return value if isinstance(value, dict) else {"value": value}


def _emit_blocks(message: Message) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    # Tool results open a user turn, before anything else it says.
    for part in message.parts:
        if isinstance(part, ToolResult):
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": part.tool_call_id,
                "content": part.content,
            }
            if part.is_error:
                result["is_error"] = True
            blocks.append(result)
    for part in message.parts:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCall):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": part.id,
                    "name": part.name,
                    "input": _arguments(part.arguments),
                }
            )
        elif isinstance(part, ImagePart):
            source = (
                {"type": "url", "url": part.url}
                if part.url
                else {"type": "base64", "media_type": part.media_type, "data": part.data}
            )
            blocks.append({"type": "image", "source": source})
    return blocks


def emit_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The upstream request body for ``request``, asking ``model``."""
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        blocks = _emit_blocks(message)
        if messages and messages[-1]["role"] == message.role:
            messages[-1]["content"].extend(blocks)  # one turn per role, alternating
        else:
            messages.append({"role": message.role, "content": blocks})
    body: dict[str, Any] = dict(request.extra) if request.source == "anthropic" else {}
    body["model"] = model
    body["messages"] = messages
    body["max_tokens"] = request.max_tokens or DEFAULT_MAX_TOKENS
    if request.system:
        body["system"] = request.system
    if request.tools:
        body["tools"] = [
            {
                "name": t.name,
                **({"description": t.description} if t.description else {}),
                "input_schema": dict(t.parameters),
            }
            for t in request.tools
        ]
    choice = request.tool_choice
    if choice is not None:
        kind = {"auto": "auto", "none": "none", "required": "any", "tool": "tool"}[choice.mode]
        body["tool_choice"] = {"type": kind, **({"name": choice.name} if choice.name else {})}
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.stream:
        body["stream"] = True
    return body


# ── whole answers ───────────────────────────────────────────────────────────────────────────


def parse_usage(usage: Any) -> Usage:
    """Anthropic usage: the total input is ``input_tokens`` plus the cache's reads and writes."""
    if not isinstance(usage, Mapping):
        return Usage()
    read = int(usage.get("cache_read_input_tokens") or 0)
    write = int(usage.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(usage.get("input_tokens") or 0) + read + write,
        output_tokens=int(usage.get("output_tokens") or 0),
        cache_read_tokens=read,
        cache_write_tokens=write,
    )


def emit_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.uncached_input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cache_read_tokens,
    }


def parse_response(body: Any, *, fallback_model: str) -> ChatResult:
    """An upstream ``message`` as a ``ChatResult``."""
    content = body.get("content") if isinstance(body, Mapping) else None
    if not isinstance(content, list):
        raise GatewayError(502, "The upstream answered without content.", code="bad_upstream")
    parts: list[TextPart | ToolCall] = []
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text":
            parts.append(TextPart(str(block.get("text", ""))))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            parts.append(ToolCall(str(block.get("id")), str(block.get("name")), arguments))
    stop_sequence = body.get("stop_sequence")
    return ChatResult(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or fallback_model),
        parts=tuple(parts),
        stop_reason=_STOP_OF_REASON.get(str(body.get("stop_reason")), "end"),
        usage=parse_usage(body.get("usage")),
        stop_sequence=stop_sequence if isinstance(stop_sequence, str) else None,
    )


def emit_response(result: ChatResult, *, id: str) -> dict[str, Any]:
    """A ``message`` for the client."""
    content: list[dict[str, Any]] = []
    for part in result.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": part.id,
                    "name": part.name,
                    "input": _arguments(part.arguments),
                }
            )
    return {
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": result.model,
        "content": content,
        "stop_reason": _REASON_OF_STOP[result.stop_reason],
        "stop_sequence": result.stop_sequence,
        "usage": emit_usage(result.usage),
    }


def emit_error(error: GatewayError, request_id: str | None = None) -> dict[str, Any]:
    """The Anthropic error envelope."""
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": _ERROR_TYPES[error.kind], "message": error.message},
    }
    if request_id:
        body["request_id"] = request_id
    return body


def error_message(body: Any) -> str | None:
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


# ── streams ─────────────────────────────────────────────────────────────────────────────────


class StreamReader:
    """Upstream message stream events as stream events."""

    def __init__(self) -> None:
        self.tool_index: dict[int, int] = {}  # content block index -> tool call index
        self.done = False
        self.finished = False

    def read(self, event: str | None, data: str) -> list[StreamEvent]:
        """The events of one SSE event (its ``event:`` type and ``data:`` payload)."""
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(502, "The upstream sent a malformed stream event.") from None
        if not isinstance(payload, Mapping):
            return []
        kind = payload.get("type") or event
        if kind == "error":
            message = error_message(payload) or "The upstream failed mid-stream."
            raise GatewayError(502, message, code="upstream_stream_error")
        if kind == "message_start":
            started = payload.get("message")
            usage = started.get("usage") if isinstance(started, Mapping) else None
            return [UsageReport(parse_usage(usage))] if usage else []
        if kind == "content_block_start":
            block = payload.get("content_block")
            if not isinstance(block, Mapping):
                return []
            if block.get("type") == "tool_use":
                index = len(self.tool_index)
                self.tool_index[int(payload.get("index") or 0)] = index
                start = ToolCallStart(index, str(block.get("id")), str(block.get("name")))
                initial = block.get("input")
                if initial:  # a block may open with its whole input
                    return [start, ToolArgumentsDelta(index, orjson.dumps(initial).decode())]
                return [start]
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(str(block["text"]))]
            return []
        if kind == "content_block_delta":
            delta = payload.get("delta")
            if not isinstance(delta, Mapping):
                return []
            if delta.get("type") == "text_delta":
                return [TextDelta(str(delta.get("text", "")))]
            if delta.get("type") == "input_json_delta":
                call = self.tool_index.get(int(payload.get("index") or 0))
                fragment = str(delta.get("partial_json", ""))
                return [ToolArgumentsDelta(call, fragment)] if call is not None else []
            return []  # thinking and signatures are not carried
        if kind == "message_delta":
            events: list[StreamEvent] = []
            delta = payload.get("delta")
            if isinstance(delta, Mapping) and delta.get("stop_reason"):
                self.finished = True
                sequence = delta.get("stop_sequence")
                events.append(
                    Finish(
                        _STOP_OF_REASON.get(str(delta["stop_reason"]), "end"),
                        sequence if isinstance(sequence, str) else None,
                    )
                )
            usage = payload.get("usage")
            if isinstance(usage, Mapping):
                events.append(UsageReport(_delta_usage(usage)))
            return events
        if kind == "message_stop":
            self.done = True
        return []


def _delta_usage(usage: Mapping[str, Any]) -> Usage:
    """``message_delta`` usage: always the output, the input counts only when given."""
    if "input_tokens" in usage and usage.get("input_tokens") is not None:
        return parse_usage(usage)
    return Usage(output_tokens=int(usage.get("output_tokens") or 0))


class StreamWriter:
    """Stream events as ``(event type, payload)`` pairs for the client (``sse.event``)."""

    def __init__(self, *, id: str, model: str) -> None:
        self.id = id
        self.model = model
        self.blocks = 0  # content blocks opened so far
        self.open: int | None = None  # the open text block
        self.tool_blocks: dict[int, int] = {}  # tool call index -> content block index
        self.open_tools: list[int] = []
        self.finish = Finish("end")

    def start(self, usage: Usage) -> list[tuple[str, dict[str, Any]]]:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": emit_usage(usage),
        }
        return [("message_start", {"type": "message_start", "message": message})]

    def _close_all(self) -> list[tuple[str, dict[str, Any]]]:
        closing = ([self.open] if self.open is not None else []) + self.open_tools
        self.open, self.open_tools = None, []
        return [("content_block_stop", {"type": "content_block_stop", "index": i}) for i in closing]

    def _open(self, block: dict[str, Any]) -> tuple[int, list[tuple[str, dict[str, Any]]]]:
        frames = self._close_all()
        index = self.blocks
        self.blocks += 1
        frames.append(
            (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": block},
            )
        )
        return index, frames

    def write(self, event: StreamEvent) -> list[tuple[str, dict[str, Any]]]:
        if isinstance(event, TextDelta):
            frames: list[tuple[str, dict[str, Any]]] = []
            if self.open is None:
                self.open, frames = self._open({"type": "text", "text": ""})
            delta = {"type": "text_delta", "text": event.text}
            frames.append(_delta(self.open, delta))
            return frames
        if isinstance(event, ToolCallStart):
            block = {"type": "tool_use", "id": event.id, "name": event.name, "input": {}}
            index, frames = self._open(block)
            self.tool_blocks[event.index] = index
            self.open_tools = [index]
            return frames
        if isinstance(event, ToolArgumentsDelta):
            block_index = self.tool_blocks.get(event.index)
            if block_index is None or not event.fragment:
                return []
            delta = {"type": "input_json_delta", "partial_json": event.fragment}
            return [_delta(block_index, delta)]
        if isinstance(event, Finish):
            self.finish = event
        return []

    def end(self, usage: Usage) -> list[tuple[str, dict[str, Any]]]:
        frames = self._close_all()
        frames.append(
            (
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _REASON_OF_STOP[self.finish.stop_reason],
                        "stop_sequence": self.finish.stop_sequence,
                    },
                    "usage": emit_usage(usage),
                },
            )
        )
        frames.append(("message_stop", {"type": "message_stop"}))
        return frames


def _delta(index: int, delta: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return (
        "content_block_delta",
        {"type": "content_block_delta", "index": index, "delta": delta},
    )
