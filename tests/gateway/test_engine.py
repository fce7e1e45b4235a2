"""The engine against fake upstreams over real HTTP: translation both ways, streams in both
formats, failover before the first byte, honest errors after it, usage and the cache."""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest

from server.gateway.engine import Caller
from server.gateway.sse import read_events
from tests.gateway.conftest import Rig, backend, drain, provider, route
from tests.gateway.fakes import FakeUpstream, Script, ToolUse

CALLER = Caller(workspace_id="ws_1", credential_id="key_1")
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def openai_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-test",
        "messages": [
            {"role": "system", "content": "Be terse."},
            {"role": "user", "content": "Hi"},
        ],
        **extra,
    }


def anthropic_body(**extra: Any) -> dict[str, Any]:
    return {
        "model": "claude-test",
        "max_tokens": 64,
        "system": "Be terse.",
        "messages": [{"role": "user", "content": "Hi"}],
        **extra,
    }


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for event in read_events([raw]):
        out.append((event.kind, event.data if event.data == "[DONE]" else json.loads(event.data)))
    return out


# ── whole answers, translated ───────────────────────────────────────────────────────────────


def test_openai_to_openai_passes_unknown_parameters_and_names_the_upstream_model(
    rig: Rig, openai_upstream: FakeUpstream
) -> None:
    openai_upstream.then(Script(text="Hello there", input_tokens=30, cache_read=10))
    routes = [route(backend(provider("openai", openai_upstream.base_url), "gpt-up"))]
    answer = rig.engine.serve("openai", CALLER, openai_body(seed=7, logit_bias={"1": 2}), routes)
    answer.on_close()
    assert answer.status == 200
    sent = openai_upstream.requests[0]
    assert sent.body["model"] == "gpt-up"
    assert sent.body["seed"] == 7 and sent.body["logit_bias"] == {"1": 2}
    assert sent.headers["Authorization"] == "Bearer sk-upstream"
    body = answer.body
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Hello there"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"]["prompt_tokens"] == 30
    assert body["usage"]["prompt_tokens_details"]["cached_tokens"] == 10
    (call,) = rig.recorder.calls
    assert (call.status_code, call.backend_id, call.upstream_model) == (200, "bke_1", "gpt-up")
    assert (call.usage.input_tokens, call.usage.cache_read_tokens) == (30, 10)


def test_openai_request_to_anthropic_upstream_translates_tools_and_tool_results(
    rig: Rig, anthropic_upstream: FakeUpstream
) -> None:
    anthropic_upstream.then(
        Script(text="", tool_calls=(ToolUse("toolu_1", "get_weather", {"city": "Oslo"}),))
    )
    routes = [route(backend(provider("anthropic", anthropic_upstream.base_url), "claude-up"))]
    history = [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "Weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
        {"role": "user", "content": "And Oslo?"},
    ]
    body = {"model": "gpt-test", "messages": history, "tools": [WEATHER], "tool_choice": "required"}
    answer = rig.engine.serve("openai", CALLER, body, routes)
    answer.on_close()
    sent = anthropic_upstream.requests[0]
    assert sent.headers["X-Api-Key"] == "sk-upstream"
    assert sent.body["system"] == "Be terse."
    assert sent.body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city",
            "input_schema": WEATHER["function"]["parameters"],  # type: ignore[index]
        }
    ]
    assert sent.body["tool_choice"] == {"type": "any"}
    assert sent.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "type": "tool_use",
                    "id": "call_0",
                    "name": "get_weather",
                    "input": {"city": "Rome"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "call_0", "content": "sunny"},
                {"type": "text", "text": "And Oslo?"},
            ],
        },
    ]
    choice = answer.body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    (call,) = choice["message"]["tool_calls"]
    assert call["id"] == "toolu_1" and call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_anthropic_request_to_openai_upstream_translates_both_ways(
    rig: Rig, openai_upstream: FakeUpstream
) -> None:
    openai_upstream.then(
        Script(text="Checking.", tool_calls=(ToolUse("call_9", "get_weather", {"city": "Oslo"}),))
    )
    routes = [route(backend(provider("openai", openai_upstream.base_url), "gpt-up"))]
    body = anthropic_body(
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
        tool_choice={"type": "tool", "name": "get_weather"},
        messages=[
            {"role": "user", "content": "Weather?"},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_0",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    }
                ],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "toolu_0", "content": "sunny"}],
            },
        ],
        top_k=5,  # Anthropic-only: not sent to an OpenAI upstream
    )
    answer = rig.engine.serve("anthropic", CALLER, body, routes)
    answer.on_close()
    sent = openai_upstream.requests[0].body
    assert "top_k" not in sent
    assert sent["messages"][0] == {"role": "system", "content": "Be terse."}
    assert sent["messages"][2]["tool_calls"][0]["function"] == {
        "name": "get_weather",
        "arguments": '{"city":"Rome"}',
    }
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "toolu_0", "content": "sunny"}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["max_tokens"] == 64
    message = answer.body
    assert message["type"] == "message" and message["stop_reason"] == "tool_use"
    assert message["content"] == [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "call_9", "name": "get_weather", "input": {"city": "Oslo"}},
    ]


# ── streams ─────────────────────────────────────────────────────────────────────────────────


def test_anthropic_stream_from_openai_upstream_keeps_tool_input_deltas(
    rig: Rig, openai_upstream: FakeUpstream
) -> None:
    openai_upstream.then(
        Script(text="On it", tool_calls=(ToolUse("call_1", "get_weather", {"city": "Oslo"}),))
    )
    routes = [route(backend(provider("openai", openai_upstream.base_url)))]
    answer = rig.engine.serve("anthropic", CALLER, anthropic_body(stream=True), routes)
    events = sse_events(drain(answer))
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert all(kind == payload["type"] for kind, payload in events)
    fragments = [
        p["delta"]["partial_json"]
        for k, p in events
        if k == "content_block_delta" and p["delta"]["type"] == "input_json_delta"
    ]
    assert len(fragments) == 2 and json.loads("".join(fragments)) == {"city": "Oslo"}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    # The upstream was asked for usage although the client could not ask for it.
    assert openai_upstream.requests[0].body["stream_options"] == {"include_usage": True}
    assert rig.recorder.calls[0].usage.output_tokens == 5


def test_openai_stream_from_anthropic_upstream_ends_with_usage_and_done(
    rig: Rig, anthropic_upstream: FakeUpstream
) -> None:
    anthropic_upstream.then(Script(text="Hi there friend", input_tokens=40, cache_read=30))
    routes = [route(backend(provider("anthropic", anthropic_upstream.base_url)))]
    body = openai_body(stream=True, stream_options={"include_usage": True})
    events = sse_events(drain(rig.engine.serve("openai", CALLER, body, routes)))
    assert events[-1] == (None, "[DONE]")
    chunks = [p for _, p in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Hi there friend"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["prompt_tokens"] == 40
    assert chunks[-1]["usage"]["prompt_tokens_details"]["cached_tokens"] == 30
    assert all(c["usage"] is None for c in chunks[:-1])


def test_usage_is_the_same_streamed_or_not_and_counts_cached_input_once(
    rig: Rig, anthropic_upstream: FakeUpstream
) -> None:
    anthropic_upstream.then(Script(text="a b c", input_tokens=100, cache_read=60, cache_write=25))
    routes = [route(backend(provider("anthropic", anthropic_upstream.base_url)))]
    rig.engine.serve("openai", CALLER, openai_body(), routes).on_close()
    drain(rig.engine.serve("openai", CALLER, openai_body(stream=True), routes))
    whole, streamed = rig.recorder.calls
    assert whole.usage == streamed.usage
    assert whole.usage.input_tokens == 100  # 15 uncached + 60 read + 25 written, once each
    assert whole.usage.cache_read_tokens == 60 and whole.usage.cache_write_tokens == 25


def test_keep_alive_comments_while_the_upstream_is_silent(
    rig: Rig, openai_upstream: FakeUpstream
) -> None:
    openai_upstream.then(Script(text="slow answer", event_delay_s=0.3))
    routes = [route(backend(provider("openai", openai_upstream.base_url)))]
    raw = drain(rig.engine.serve("openai", CALLER, openai_body(stream=True), routes))
    assert b": keep-alive\n\n" in raw and raw.endswith(b"data: [DONE]\n\n")


# ── failures ────────────────────────────────────────────────────────────────────────────────


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("stream", [False, True])
def test_failover_before_the_first_byte(
    rig: Rig, openai_upstream: FakeUpstream, anthropic_upstream: FakeUpstream, stream: bool
) -> None:
    openai_upstream.then(Script(status=503), Script(delay_s=1.0))
    anthropic_upstream.then(Script(text="from the third"))
    routes = [
        route(
            backend(provider("openai", openai_upstream.base_url), id="bke_a", priority=1),
            backend(provider("openai", f"http://127.0.0.1:{_closed_port()}/v1"), id="bke_0"),
            backend(
                provider("openai", openai_upstream.base_url), id="bke_b", priority=2, timeout_ms=300
            ),
            backend(provider("anthropic", anthropic_upstream.base_url), id="bke_c", priority=3),
        )
    ]
    answer = rig.engine.serve("openai", CALLER, openai_body(stream=stream), routes)
    if stream:
        raw = drain(answer)
        assert b"from" in raw and raw.endswith(b"data: [DONE]\n\n")
    else:
        answer.on_close()
        assert answer.body["choices"][0]["message"]["content"] == "from the third"
    call = rig.recorder.calls[0]
    assert call.status_code == 200 and call.backend_id == "bke_c"
    assert [b for b, _ in call.failovers] == ["bke_0", "bke_a", "bke_b"]


def test_a_client_error_from_the_upstream_is_not_failed_over(
    rig: Rig, openai_upstream: FakeUpstream, anthropic_upstream: FakeUpstream
) -> None:
    openai_upstream.then(Script(status=400, error_message="bad temperature"))
    routes = [
        route(
            backend(provider("openai", openai_upstream.base_url), id="bke_a"),
            backend(provider("anthropic", anthropic_upstream.base_url), id="bke_b", priority=1),
        )
    ]
    answer = rig.engine.serve("anthropic", CALLER, anthropic_body(), routes)
    answer.on_close()
    assert answer.status == 400
    assert answer.body["type"] == "error" and "bad temperature" in answer.body["error"]["message"]
    assert anthropic_upstream.requests == []


@pytest.mark.parametrize("api", ["openai", "anthropic"])
@pytest.mark.parametrize("failure", ["cut", "error"])
def test_a_failure_after_the_first_byte_ends_the_stream_with_an_error_event(
    rig: Rig, openai_upstream: FakeUpstream, api: str, failure: str
) -> None:
    script = (
        Script(text="one two three four", cut_after_events=3)
        if failure == "cut"
        else Script(text="one two three four", error_after_events=3)
    )
    openai_upstream.then(script)
    routes = [
        route(
            backend(provider("openai", openai_upstream.base_url), id="bke_a"),
            backend(provider("local"), id="bke_b", priority=1),
        )
    ]
    body = openai_body(stream=True) if api == "openai" else anthropic_body(stream=True)
    events = sse_events(drain(rig.engine.serve(api, CALLER, body, routes)))  # type: ignore[arg-type]
    kind, last = events[-1]
    if api == "openai":
        assert kind is None and "error" in last and (None, "[DONE]") not in events
    else:
        assert kind == "error" and last["type"] == "error"
        assert "message_stop" not in [k for k, _ in events]
    call = rig.recorder.calls[0]
    assert call.status_code == 502 and call.backend_id == "bke_a"
    assert call.error is not None and "after the first byte" in call.error


def test_no_route_is_a_native_404(rig: Rig) -> None:
    routes = [route(backend(provider("local")), patterns=("claude-*",))]
    answer = rig.engine.serve("openai", CALLER, openai_body(), routes)
    assert answer.status == 404
    assert answer.body["error"]["code"] == "model_not_found"


# ── the cache ───────────────────────────────────────────────────────────────────────────────


def test_cache_miss_then_hit_bypass_on_no_cache_and_never_for_streams(rig: Rig) -> None:
    routes = [route(backend(provider("local")), cache=True)]

    def ask(**kwargs: Any) -> Any:
        no_cache = kwargs.pop("no_cache", False)
        answer = rig.engine.serve(
            "openai", CALLER, openai_body(**kwargs), routes, no_cache=no_cache
        )
        if answer.frames is not None:
            drain(answer)
        else:
            answer.on_close()
        return answer

    first, second = ask(), ask()
    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert second.body == first.body
    assert ask(no_cache=True).headers["X-Cache"] == "BYPASS"
    assert ask(stream=True).headers["X-Cache"] == "BYPASS"
    assert rig.cache.hit_counts == {first.headers["X-Cache-Key"]: 1}


@pytest.mark.parametrize(
    "change",
    [
        {"temperature": 0.5},
        {"max_tokens": 9},
        {"seed": 1},
        {"messages": [{"role": "user", "content": "Hi!"}]},
        {"tools": [WEATHER]},
        {"model": "gpt-other"},
    ],
)
def test_requests_that_differ_in_any_parameter_never_share_an_entry(
    rig: Rig, change: dict[str, Any]
) -> None:
    routes = [route(backend(provider("local")), cache=True)]
    base = rig.engine.serve("openai", CALLER, openai_body(), routes)
    base.on_close()
    other = rig.engine.serve("openai", CALLER, {**openai_body(), **change}, routes)
    assert other.headers["X-Cache"] == "MISS"
    assert other.headers["X-Cache-Key"] != base.headers["X-Cache-Key"]


def test_the_cache_key_covers_the_workspace_and_the_api(rig: Rig) -> None:
    routes = [route(backend(provider("local")), cache=True)]
    rig.engine.serve("openai", CALLER, openai_body(), routes).on_close()
    elsewhere = Caller(workspace_id="ws_2", credential_id="key_2")
    assert rig.engine.serve("openai", elsewhere, openai_body(), routes).headers["X-Cache"] == "MISS"


# ── rate limits ─────────────────────────────────────────────────────────────────────────────


def test_rate_limit_headers_and_a_native_429_with_retry_after(rig: Rig) -> None:
    routes = [route(backend(provider("local")), rpm=60, burst=2)]
    answers = [rig.engine.serve("anthropic", CALLER, anthropic_body(), routes) for _ in range(3)]
    assert [a.status for a in answers] == [200, 200, 429]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["1", "0", "0"]
    assert answers[0].headers["X-RateLimit-Limit"] == "60"
    refused = answers[2]
    assert refused.body["error"]["type"] == "rate_limit_error"
    assert refused.headers["Retry-After"] == "2" and refused.headers["retry-after-ms"] == "2000"
    # Another credential has its own budget.
    other = Caller(workspace_id="ws_1", credential_id="key_2")
    assert rig.engine.serve("anthropic", other, anthropic_body(), routes).status == 200
