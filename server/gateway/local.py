"""The built-in ``local`` provider: a deterministic model that needs no network and no key.

It lets a fresh server run the gateway, agents and workflows end to end. Its behaviour, which
depends on nothing but the request:

* **Tokens**: one token per word or punctuation mark (``\\w+`` or any other non-space
  character). The input counts the system prompt, every message's text, tool call arguments and
  tool results, and the JSON of the tool definitions.
* **Tool calls**: when the request gives tools, ``tool_choice`` is not ``none`` and the last
  user turn is not a tool result, it calls a tool: the one ``tool_choice`` names, else the
  first. Its arguments fill each property of the tool's input schema from the last user text:
  a string gets the text, a number or integer its token count, a boolean ``true``, an enum its
  first value, an array ``[]`` and an object ``{}``. The stop reason is ``tool_use``.
* **Text**: otherwise it answers ``You said: <last user text>``, or, after tool results,
  ``Tool <name> returned: <result>`` for each. An empty conversation gets
  ``Hello from the local model.``
* **Limits**: ``stop`` sequences cut the text at the first one found (stop reason
  ``stop_sequence``); ``max_tokens`` cuts it after that many tokens (``max_tokens``).
* **Streams**: the text arrives one token (with the spaces after it) per event; a tool call's
  arguments arrive in two fragments.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

import orjson

from server.gateway.chat import (
    ChatRequest,
    ChatResult,
    Finish,
    Message,
    StopReason,
    StreamEvent,
    TextDelta,
    TextPart,
    ToolArgumentsDelta,
    ToolCall,
    ToolCallStart,
    ToolResult,
    Usage,
    UsageReport,
)
from server.gateway.config import BackendConfig

_TOKEN = re.compile(r"\w+|[^\w\s]")
_TOKEN_WITH_SPACE = re.compile(r"(?:\w+|[^\w\s])\s*")


def count_tokens(text: str) -> int:
    """The local model's token count of ``text``."""
    return len(_TOKEN.findall(text))


def _message_text(message: Message) -> str:
    texts = []
    for part in message.parts:
        if isinstance(part, TextPart):
            texts.append(part.text)
        elif isinstance(part, ToolCall):
            texts.append(part.arguments)
        elif isinstance(part, ToolResult):
            texts.append(part.content)
    return " ".join(texts)


def input_tokens(request: ChatRequest) -> int:
    tools = [{"name": t.name, "parameters": dict(t.parameters)} for t in request.tools]
    text = " ".join(
        [request.system or "", *(_message_text(m) for m in request.messages)]
        + ([orjson.dumps(tools).decode()] if tools else [])
    )
    return count_tokens(text)


def _last_user(request: ChatRequest) -> Message | None:
    for message in reversed(request.messages):
        if message.role == "user":
            return message
    return None


def _argument(schema: Any, text: str) -> Any:
    if not isinstance(schema, Mapping):
        return text
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind in ("integer", "number"):
        return count_tokens(text)
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    return text


def _tool_call(request: ChatRequest, text: str) -> ToolCall | None:
    choice = request.tool_choice
    if not request.tools or (choice is not None and choice.mode == "none"):
        return None
    tool = request.tools[0]
    if choice is not None and choice.mode == "tool":
        tool = next((t for t in request.tools if t.name == choice.name), tool)
    properties = tool.parameters.get("properties")
    arguments = (
        {name: _argument(schema, text) for name, schema in properties.items()}
        if isinstance(properties, Mapping)
        else {}
    )
    digest = hashlib.sha256(f"{tool.name}\0{text}".encode()).hexdigest()[:24]
    return ToolCall(f"call_{digest}", tool.name, orjson.dumps(arguments).decode())


def _tool_names(request: ChatRequest) -> dict[str, str]:
    """The tool each earlier call asked for, by call id."""
    return {
        part.id: part.name
        for message in request.messages
        for part in message.parts
        if isinstance(part, ToolCall)
    }


def _cut(text: str, request: ChatRequest) -> tuple[str, StopReason, str | None]:
    """The answer within the request's stop sequences and token limit."""
    stop: StopReason = "end"
    sequence = None
    found = [(text.find(s), s) for s in request.stop if s and s in text]
    if found:
        at, sequence = min(found)
        text, stop = text[:at], "stop_sequence"
    if request.max_tokens is not None:
        tokens = _TOKEN_WITH_SPACE.findall(text)
        if len(tokens) > request.max_tokens:
            text = "".join(tokens[: request.max_tokens]).rstrip()
            stop, sequence = "max_tokens", None
    return text, stop, sequence


def answer(request: ChatRequest, model: str) -> ChatResult:
    """The local model's whole answer to ``request``."""
    last = _last_user(request)
    results = [p for p in last.parts if isinstance(p, ToolResult)] if last else []
    user_text = " ".join(p.text for p in last.parts if isinstance(p, TextPart)) if last else ""
    usage_in = input_tokens(request)
    digest = hashlib.sha256(orjson.dumps(repr(request))).hexdigest()[:24]
    if not results:
        call = _tool_call(request, user_text)
        if call is not None:
            usage = Usage(usage_in, count_tokens(call.arguments))
            return ChatResult(f"local-{digest}", model, (call,), "tool_use", usage)
    if results:
        names = _tool_names(request)
        text = " ".join(
            f"Tool {names.get(r.tool_call_id, r.tool_call_id)} returned: {r.content}"
            for r in results
        )
    elif user_text.strip():
        text = f"You said: {user_text.strip()}"
    else:
        text = "Hello from the local model."
    text, stop, sequence = _cut(text, request)
    usage = Usage(usage_in, count_tokens(text))
    return ChatResult(f"local-{digest}", model, (TextPart(text),), stop, usage, sequence)


class LocalUpstream:
    """The ``local`` provider as an upstream (``server.gateway.upstream.Upstream``)."""

    def complete(self, request: ChatRequest, backend: BackendConfig) -> ChatResult:
        return answer(request, backend.upstream_model)

    def stream(self, request: ChatRequest, backend: BackendConfig) -> Iterator[StreamEvent]:
        result = answer(request, backend.upstream_model)
        yield UsageReport(Usage(input_tokens=result.usage.input_tokens))
        index = 0
        for part in result.parts:
            if isinstance(part, TextPart):
                for token in _TOKEN_WITH_SPACE.findall(part.text):
                    yield TextDelta(token)
            else:
                yield ToolCallStart(index, part.id, part.name)
                half = len(part.arguments) // 2
                yield ToolArgumentsDelta(index, part.arguments[:half])
                yield ToolArgumentsDelta(index, part.arguments[half:])
                index += 1
        yield Finish(result.stop_reason, result.stop_sequence)
        yield UsageReport(result.usage)
