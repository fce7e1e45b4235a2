"""The OpenAI chat completions wire format, read into and written from ``server.gateway.chat``.

Requests, whole answers, stream chunks (``chat.completion.chunk`` in ``data:`` lines, then
``data: [DONE]``; a last chunk with ``choices: []`` and the usage when the client asked for
``stream_options.include_usage``) and the error envelope ``{"error": {message, type, param,
code}}``. ``prompt_tokens`` counts every input token, cached ones included
(``prompt_tokens_details.cached_tokens``).
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

# Request members the chat model reads; any other travels in ``ChatRequest.extra``.
_MODELLED = frozenset(
    {
        "model",
        "messages",
        "tools",
        "tool_choice",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "stream",
        "stream_options",
    }
)

_STOP_OF_FINISH: dict[str, StopReason] = {
    "stop": "end",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "content_filter",
}
_FINISH_OF_STOP: dict[StopReason, str] = {
    "end": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
}
_ERROR_TYPES = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_error",
    "upstream": "api_error",
    "overloaded": "api_error",
    "timeout": "api_error",
}


# ── requests ────────────────────────────────────────────────────────────────────────────────


def _text_of(content: Any, where: str) -> str:
    """A system or tool message's content (a string or a list of text parts) as text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping) or part.get("type") != "text":
                raise invalid(f"{where} may only hold text parts.", param=where)
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise invalid(f"{where} must be a string or a list of parts.", param=where)


def _image_of(part: Mapping[str, Any], where: str) -> ImagePart:
    url = part.get("image_url")
    url = url.get("url") if isinstance(url, Mapping) else url
    if not isinstance(url, str):
        raise invalid(f"{where}.image_url.url must be a string.", param=where)
    if url.startswith("data:") and ";base64," in url:
        head, _, data = url.partition(";base64,")
        return ImagePart(data=data, media_type=head.removeprefix("data:"))
    return ImagePart(url=url)


def _user_parts(content: Any, where: str) -> list[Part]:
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise invalid(f"{where} must be a string or a list of parts.", param=where)
    parts: list[Part] = []
    for i, part in enumerate(content):
        kind = part.get("type") if isinstance(part, Mapping) else None
        if kind == "text":
            parts.append(TextPart(str(part.get("text", ""))))
        elif kind == "image_url":
            parts.append(_image_of(part, f"{where}[{i}]"))
        else:
            raise invalid(f"{where}[{i}] has an unsupported type {kind!r}.", param=where)
    return parts


def _assistant_parts(message: Mapping[str, Any], where: str) -> list[Part]:
    parts: list[Part] = []
    content = message.get("content")
    if content:
        parts.append(TextPart(_text_of(content, f"{where}.content")))
    for i, call in enumerate(message.get("tool_calls") or []):
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(f"{where}.tool_calls[{i}] needs a function name.", param=where)
        arguments = function.get("arguments")
        parts.append(
            ToolCall(
                str(call.get("id") or f"call_{i}"),
                function["name"],
                arguments if isinstance(arguments, str) else "{}",
            )
        )
    return parts


def parse_request(body: Mapping[str, Any]) -> ChatRequest:
    """A chat completions request body as a ``ChatRequest``."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model is required.", param="model")
    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise invalid("messages must be a non-empty list.", param="messages")
    system: list[str] = []
    messages: list[Message] = []

    def append(role: Any, parts: list[Part]) -> None:
        if messages and messages[-1].role == role and role == "user":
            messages[-1] = Message(role, messages[-1].parts + tuple(parts))
        else:
            messages.append(Message(role, tuple(parts)))

    for i, message in enumerate(raw_messages):
        where = f"messages[{i}]"
        if not isinstance(message, Mapping):
            raise invalid(f"{where} must be an object.", param=where)
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content"), f"{where}.content"))
        elif role == "user":
            append("user", _user_parts(message.get("content"), f"{where}.content"))
        elif role == "assistant":
            append("assistant", _assistant_parts(message, where))
        elif role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str):
                raise invalid(f"{where}.tool_call_id is required.", param=where)
            content = _text_of(message.get("content"), f"{where}.content")
            append("user", [ToolResult(call_id, content)])
        else:
            raise invalid(f"{where}.role {role!r} is not supported.", param=where)

    tools = []
    for i, tool in enumerate(body.get("tools") or []):
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(function.get("name"), str):
            raise invalid(f"tools[{i}] must be a function with a name.", param="tools")
        parameters = function.get("parameters")
        tools.append(
            Tool(
                function["name"],
                function.get("description"),
                parameters if isinstance(parameters, Mapping) else {"type": "object"},
            )
        )
    stop = body.get("stop")
    stream_options = body.get("stream_options")
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    return ChatRequest(
        model=model,
        messages=tuple(messages),
        system="\n\n".join(system) if system else None,
        tools=tuple(tools),
        tool_choice=_tool_choice(body.get("tool_choice")),
        max_tokens=max_tokens if isinstance(max_tokens, int) else None,
        temperature=_number(body.get("temperature")),
        top_p=_number(body.get("top_p")),
        stop=(stop,) if isinstance(stop, str) else tuple(str(s) for s in stop or ()),
        stream=bool(body.get("stream")),
        include_usage=bool(
            isinstance(stream_options, Mapping) and stream_options.get("include_usage")
        ),
        source="openai",
        extra={k: v for k, v in body.items() if k not in _MODELLED},
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _tool_choice(value: Any) -> ToolChoice | None:
    if value in ("auto", "none", "required"):
        return ToolChoice(value)
    if isinstance(value, Mapping):
        function = value.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return ToolChoice("tool", function["name"])
    return None


def emit_request(request: ChatRequest, model: str) -> dict[str, Any]:
    """The upstream request body for ``request``, asking ``model``.

    A streamed request always asks for usage, so the gateway can record it whether or not the
    client asked for it.
    """
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        messages.extend(_emit_message(message))
    body: dict[str, Any] = dict(request.extra) if request.source == "openai" else {}
    body["model"] = model
    body["messages"] = messages
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {
                    "name": t.name,
                    **({"description": t.description} if t.description else {}),
                    "parameters": dict(t.parameters),
                },
            }
            for t in request.tools
        ]
    if request.tool_choice is not None:
        choice = request.tool_choice
        body["tool_choice"] = (
            {"type": "function", "function": {"name": choice.name}}
            if choice.mode == "tool"
            else choice.mode
        )
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    for name in ("temperature", "top_p"):
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.stop:
        body["stop"] = list(request.stop)
    if request.stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


def _emit_message(message: Message) -> list[dict[str, Any]]:
    if message.role == "assistant":
        text = "".join(p.text for p in message.parts if isinstance(p, TextPart))
        calls = [
            {
                "id": p.id,
                "type": "function",
                "function": {"name": p.name, "arguments": p.arguments},
            }
            for p in message.parts
            if isinstance(p, ToolCall)
        ]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    emitted: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": p.tool_call_id, "content": p.content}
        for p in message.parts
        if isinstance(p, ToolResult)
    ]
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if isinstance(part, TextPart):
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            url = part.url or f"data:{part.media_type};base64,{part.data}"
            content.append({"type": "image_url", "image_url": {"url": url}})
    if len(content) == 1 and content[0]["type"] == "text":
        emitted.append({"role": "user", "content": content[0]["text"]})
    elif content:
        emitted.append({"role": "user", "content": content})
    return emitted


# ── whole answers ───────────────────────────────────────────────────────────────────────────


def parse_usage(usage: Any) -> Usage:
    """OpenAI usage: ``prompt_tokens`` already includes the cached tokens."""
    if not isinstance(usage, Mapping):
        return Usage()
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    return Usage(
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
        cache_read_tokens=int(cached or 0),
    )


def emit_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens},
    }


def parse_response(body: Any, *, fallback_model: str) -> ChatResult:
    """An upstream ``chat.completion`` as a ``ChatResult``."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise GatewayError(502, "The upstream answered without choices.", code="bad_upstream")
    choice = choices[0]
    message = _object(choice.get("message"))
    parts = [p for p in _assistant_parts(message, "choices[0].message") if _is_answer(p)]
    return ChatResult(
        id=str(body.get("id") or ""),
        model=str(body.get("model") or fallback_model),
        parts=tuple(parts),  # type: ignore[arg-type]
        stop_reason=_STOP_OF_FINISH.get(str(choice.get("finish_reason")), "end"),
        usage=parse_usage(body.get("usage")),
    )


def _object(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else an empty one."""
    return value if isinstance(value, Mapping) else {}


def _is_answer(part: Part) -> bool:
    return isinstance(part, (TextPart, ToolCall))


def emit_response(result: ChatResult, *, id: str, created: int) -> dict[str, Any]:
    """A ``chat.completion`` for the client."""
    text = result.text
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in result.parts
        if isinstance(p, ToolCall)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if calls:
        message["tool_calls"] = calls
    return {
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": result.model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": _FINISH_OF_STOP[result.stop_reason],
            }
        ],
        "usage": emit_usage(result.usage),
    }


def emit_error(error: GatewayError) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {
        "error": {
            "message": error.message,
            "type": _ERROR_TYPES[error.kind],
            "param": error.param,
            "code": error.code,
        }
    }


def error_message(body: Any) -> str | None:
    """The message of an upstream error envelope, if it has one."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return None


# ── streams ─────────────────────────────────────────────────────────────────────────────────


class StreamReader:
    """Upstream ``chat.completion.chunk``s as stream events."""

    def __init__(self) -> None:
        self.started: set[int] = set()
        self.done = False
        self.finished = False

    def read(self, data: str) -> list[StreamEvent]:
        """The events of one ``data:`` payload (``[DONE]`` ends the stream)."""
        if data.strip() == "[DONE]":
            self.done = True
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise GatewayError(502, "The upstream sent a malformed stream chunk.") from None
        if not isinstance(chunk, Mapping):
            return []
        if "error" in chunk:
            message = error_message(chunk) or "The upstream failed mid-stream."
            raise GatewayError(502, message, code="upstream_stream_error")
        events: list[StreamEvent] = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, Mapping) or choice.get("index", 0) != 0:
                continue
            delta = _object(choice.get("delta"))
            if delta.get("content"):
                events.append(TextDelta(str(delta["content"])))
            for call in delta.get("tool_calls") or []:
                events.extend(self._tool_events(call))
            if choice.get("finish_reason"):
                self.finished = True
                stop = _STOP_OF_FINISH.get(str(choice["finish_reason"]), "end")
                events.append(Finish(stop))
        if isinstance(chunk.get("usage"), Mapping):
            events.append(UsageReport(parse_usage(chunk["usage"])))
        return events

    def _tool_events(self, call: Any) -> list[StreamEvent]:
        if not isinstance(call, Mapping):
            return []
        index = int(call.get("index") or 0)
        function = _object(call.get("function"))
        events: list[StreamEvent] = []
        if index not in self.started:
            self.started.add(index)
            events.append(
                ToolCallStart(index, str(call.get("id") or ""), str(function.get("name") or ""))
            )
        if function.get("arguments"):
            events.append(ToolArgumentsDelta(index, str(function["arguments"])))
        return events


class StreamWriter:
    """Stream events as ``chat.completion.chunk`` payloads for the client (``sse.data``)."""

    def __init__(self, *, id: str, model: str, created: int, include_usage: bool) -> None:
        self.id = id
        self.model = model
        self.created = created
        self.include_usage = include_usage
        self.finish: str | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def start(self) -> list[dict[str, Any]]:
        return [self._chunk({"role": "assistant", "content": ""})]

    def write(self, event: StreamEvent) -> list[dict[str, Any]]:
        if isinstance(event, TextDelta):
            return [self._chunk({"content": event.text})]
        if isinstance(event, ToolCallStart):
            call = {
                "index": event.index,
                "id": event.id,
                "type": "function",
                "function": {"name": event.name, "arguments": ""},
            }
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, ToolArgumentsDelta):
            call = {"index": event.index, "function": {"arguments": event.fragment}}
            return [self._chunk({"tool_calls": [call]})]
        if isinstance(event, Finish):
            self.finish = _FINISH_OF_STOP[event.stop_reason]
        return []

    def end(self, usage: Usage) -> list[dict[str, Any]]:
        """The finishing chunk and, if asked for, the usage chunk (``[DONE]`` follows)."""
        chunks = [self._chunk({}, self.finish or "stop")]
        if self.include_usage:
            chunks.append(
                {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": emit_usage(usage),
                }
            )
        return chunks
