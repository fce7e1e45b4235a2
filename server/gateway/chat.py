"""The gateway's own model of a chat exchange, between the OpenAI and Anthropic wire formats.

Every request is read into a ``ChatRequest`` and every answer, whole or streamed, becomes a
``ChatResult`` or a sequence of ``StreamEvent``s, whatever format the client spoke and whatever
format the upstream speaks; the wire modules (``openai_wire``, ``anthropic_wire``) translate
each way. Parameters the model does not name travel in ``ChatRequest.extra`` and reach only an
upstream that speaks the client's own format.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

WireFormat = Literal["openai", "anthropic"]
# Why the model stopped, in neutral terms (each wire format names them its own way).
StopReason = Literal["end", "max_tokens", "stop_sequence", "tool_use", "content_filter"]


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ToolCall:
    """The model asks for a tool: ``arguments`` is the JSON text of its input."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ToolResult:
    """What a tool answered to the call ``tool_call_id``."""

    tool_call_id: str
    content: str
    is_error: bool = False


@dataclass(frozen=True)
class ImagePart:
    """An image given by URL or as base64 data (``media_type`` set for data)."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None


Part = TextPart | ToolCall | ToolResult | ImagePart


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str | None
    parameters: Mapping[str, Any]  # JSON Schema of the input


@dataclass(frozen=True)
class ToolChoice:
    """``auto``, ``none``, ``required`` (any tool) or ``tool`` (the one named)."""

    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: tuple[Message, ...]
    system: str | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: ToolChoice | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    stream: bool = False
    include_usage: bool = False  # the client asked for usage in the stream (OpenAI)
    source: WireFormat = "openai"
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Usage:
    """Tokens of one call, counted once each.

    ``input_tokens`` is every input token, cached or not (OpenAI's ``prompt_tokens``);
    ``cache_read_tokens`` and ``cache_write_tokens`` are the parts of it read from or written to
    the provider's prompt cache (Anthropic reports them beside its ``input_tokens``, which
    excludes them).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def uncached_input_tokens(self) -> int:
        return max(0, self.input_tokens - self.cache_read_tokens - self.cache_write_tokens)

    def merge(self, later: Usage) -> Usage:
        """Usage reported in parts (a stream's start and end): each non-zero later count wins."""
        return Usage(
            later.input_tokens or self.input_tokens,
            later.output_tokens or self.output_tokens,
            later.cache_read_tokens or self.cache_read_tokens,
            later.cache_write_tokens or self.cache_write_tokens,
        )


@dataclass(frozen=True)
class ChatResult:
    """A whole answer."""

    id: str
    model: str
    parts: tuple[TextPart | ToolCall, ...]
    stop_reason: StopReason
    usage: Usage
    stop_sequence: str | None = None

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))


# ── stream events ────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class ToolCallStart:
    """A tool call begins; ``index`` numbers the calls of one answer from 0."""

    index: int
    id: str
    name: str


@dataclass(frozen=True)
class ToolArgumentsDelta:
    """A fragment of the JSON text of tool call ``index``'s input."""

    index: int
    fragment: str


@dataclass(frozen=True)
class Finish:
    stop_reason: StopReason
    stop_sequence: str | None = None


@dataclass(frozen=True)
class UsageReport:
    usage: Usage


StreamEvent = TextDelta | ToolCallStart | ToolArgumentsDelta | Finish | UsageReport


def collect(events: list[StreamEvent], *, id: str, model: str) -> ChatResult:
    """The whole answer a complete stream of events makes."""
    parts: list[TextPart | ToolCall] = []
    position: dict[int, int] = {}  # tool call index -> its place in ``parts``
    usage = Usage()
    finish = Finish("end")
    for event in events:
        if isinstance(event, TextDelta):
            last = parts[-1] if parts else None
            if isinstance(last, TextPart):
                parts[-1] = TextPart(last.text + event.text)
            else:
                parts.append(TextPart(event.text))
        elif isinstance(event, ToolCallStart):
            position[event.index] = len(parts)
            parts.append(ToolCall(event.id, event.name, ""))
        elif isinstance(event, ToolArgumentsDelta):
            at = position.get(event.index)
            call = parts[at] if at is not None else None
            if isinstance(call, ToolCall) and at is not None:
                parts[at] = ToolCall(call.id, call.name, call.arguments + event.fragment)
        elif isinstance(event, Finish):
            finish = event
        else:
            usage = usage.merge(event.usage)
    whole = tuple(
        ToolCall(p.id, p.name, p.arguments or "{}") if isinstance(p, ToolCall) else p for p in parts
    )
    return ChatResult(id, model, whole, finish.stop_reason, usage, finish.stop_sequence)


def events_of(result: ChatResult) -> list[StreamEvent]:
    """A whole answer as the stream of events that makes it."""
    events: list[StreamEvent] = []
    index = 0
    for part in result.parts:
        if isinstance(part, TextPart):
            events.append(TextDelta(part.text))
        else:
            events.append(ToolCallStart(index, part.id, part.name))
            events.append(ToolArgumentsDelta(index, part.arguments))
            index += 1
    events.append(Finish(result.stop_reason, result.stop_sequence))
    events.append(UsageReport(result.usage))
    return events
