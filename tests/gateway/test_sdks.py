"""The official ``openai`` and ``anthropic`` SDKs, unmodified, against a live ``gantry serve``
whose gateway routes to fake upstreams on 127.0.0.1 and to the built-in ``local`` provider.

One server (two workers, as ``gantry serve`` runs) serves the whole module; the scene (a
workspace, a gateway API key, providers, backends and routes) is made through the API.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
import requests

from contract_tests.live import LiveServer, live_server
from tests.gateway.fakes import FakeUpstream, Script, ToolUse

TOKEN = "pat_" + "Gateway0Sdk0Tests0Bootstrap0Token0012345"[:40]
# Generous bounds: they catch a blocked server, not a slow one (speed is the benchmarks' job).
PROMPT_S = 10.0
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


@dataclass(frozen=True)
class Scene:
    server: LiveServer
    workspace_id: str
    key: str
    openai_fake: FakeUpstream
    anthropic_fake: FakeUpstream

    @property
    def gateway_url(self) -> str:
        return f"{self.server.api_url}/llm/v1"

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        response = requests.request(
            method,
            self.server.api_url + path,
            json=body,
            headers={"Authorization": f"Bearer {self.server.token}"},
            timeout=30,
        )
        assert response.status_code < 300, (path, response.status_code, response.text)
        return response.json() if response.content else None

    def openai(self, **kwargs: Any) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.gateway_url, api_key=self.key, max_retries=0, **kwargs)

    def anthropic(self, **kwargs: Any) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            base_url=f"{self.server.api_url}/llm", api_key=self.key, max_retries=0, **kwargs
        )

    def logged(self, count: int, model: str) -> list[dict[str, Any]]:
        """The newest ``count`` request-log entries of calls for ``model`` (written shortly
        after each response, by each worker's log writer)."""
        deadline = time.monotonic() + PROMPT_S
        while True:
            path = f"/workspaces/{self.workspace_id}/gateway/requests?model={model}"
            items = self.admin("GET", path)["items"]
            if len(items) >= count or time.monotonic() > deadline:
                return list(items[:count])
            time.sleep(0.05)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    environ = {
        "GANTRY_THREADS": "48",
        "GANTRY_GATEWAY_KEEPALIVE_S": "0.5",
        # The default budget out of the way; the limits are tested on a route of their own.
        "GANTRY_GATEWAY_RPM": "100000",
        "GANTRY_GATEWAY_BURST": "10000",
    }
    with (
        FakeUpstream("openai") as openai_fake,
        FakeUpstream("anthropic") as anthropic_fake,
        live_server(tmp_path_factory.mktemp("gateway-sdks"), TOKEN, environ=environ) as server,
    ):
        scene = Scene(server, "", "", openai_fake, anthropic_fake)
        ws = scene.admin("POST", "/workspaces", {"name": "Gateway", "slug": "gateway"})["id"]
        key = scene.admin(
            "POST",
            f"/workspaces/{ws}/api-keys",
            {"name": "sdk", "role": "operator", "scopes": ["gateway"]},
        )["key"]
        scene = Scene(server, ws, key, openai_fake, anthropic_fake)

        def provider(name: str, kind: str, base_url: str | None = None) -> str:
            body: dict[str, Any] = {"name": name, "type": kind}
            if base_url:
                body |= {"base_url": base_url, "api_key": "sk-upstream-secret"}
            return str(scene.admin("POST", f"/workspaces/{ws}/providers", body)["id"])

        def backend(name: str, provider_id: str, model: str, timeout_ms: int = 5000) -> str:
            body = {
                "name": name,
                "provider_id": provider_id,
                "upstream_model": model,
                "timeout_ms": timeout_ms,
            }
            return str(scene.admin("POST", f"/workspaces/{ws}/gateway/backends", body)["id"])

        def route(name: str, patterns: list[str], *backends: str, **extra: Any) -> None:
            body = {
                "name": name,
                "model_patterns": patterns,
                "backends": [{"backend_id": b, "priority": i} for i, b in enumerate(backends)],
                **extra,
            }
            scene.admin("POST", f"/workspaces/{ws}/gateway/routes", body)

        local = backend("local", provider("local", "local"), "local-model")
        oa = backend("oa", provider("fake-openai", "openai", openai_fake.base_url), "gpt-up")
        an = backend(
            "an", provider("fake-anthropic", "anthropic", anthropic_fake.base_url), "claude-up"
        )
        dead = backend(
            "dead", provider("dead", "openai_compatible", "http://127.0.0.1:9/v1"), "gpt-up"
        )
        route("local", ["local-*"], local, cache={"enabled": True, "ttl_seconds": 300})
        route("openai", ["gpt-*"], oa)
        route("anthropic", ["claude-*"], an)
        route("failover", ["failover-*"], dead, oa)
        route("limited", ["limited-*"], local, rate_limit={"requests_per_minute": 60, "burst": 3})
        yield scene


@pytest.fixture(autouse=True)
def _fresh(scene: Scene) -> None:
    scene.openai_fake.reset()
    scene.anthropic_fake.reset()


# ── plain and streamed ──────────────────────────────────────────────────────────────────────


def test_openai_sdk_plain_and_streamed_from_the_local_provider(scene: Scene) -> None:
    client = scene.openai()
    messages: Any = [{"role": "user", "content": "Hello gateway"}]
    completion = client.chat.completions.create(model="local-a", messages=messages)
    assert completion.choices[0].message.content == "You said: Hello gateway"
    assert completion.usage is not None and completion.usage.prompt_tokens == 2
    chunks = list(
        client.chat.completions.create(
            model="local-a",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: Hello gateway"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_anthropic_sdk_plain_and_streamed_with_bearer_and_x_api_key(scene: Scene) -> None:
    client = scene.anthropic()
    message = client.messages.create(
        model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "Hi"}]
    )
    assert message.content[0].type == "text"
    assert message.content[0].text == "Hello from the fake upstream."
    with client.messages.stream(
        model="local-b", max_tokens=64, messages=[{"role": "user", "content": "Stream me"}]
    ) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == "You said: Stream me" and final.stop_reason == "end_turn"
    raw = requests.post(
        f"{scene.gateway_url}/messages",
        headers={"x-api-key": scene.key, "anthropic-version": "2023-06-01"},
        json={"model": "local-b", "max_tokens": 8, "messages": [{"role": "user", "content": "x"}]},
        timeout=30,
    )
    assert raw.status_code == 200 and raw.json()["type"] == "message"


def test_models_lists_the_aliases_and_upstream_models_that_route(scene: Scene) -> None:
    ids = {model.id for model in scene.openai().models.list()}
    assert {"local-model", "gpt-up", "claude-up"} <= ids


# ── tool calls, both translations, both stream formats ──────────────────────────────────────


def test_openai_sdk_tool_call_through_an_anthropic_upstream_streamed(scene: Scene) -> None:
    scene.anthropic_fake.then(
        Script(text="", tool_calls=(ToolUse("toolu_7", "get_weather", {"city": "Oslo"}),))
    )
    stream = scene.openai().chat.completions.create(
        model="claude-x",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in stream:
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            for call in choice.delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": "", "name": "", "arguments": ""})
                entry["id"] += call.id or ""
                if call.function is not None:
                    entry["name"] += call.function.name or ""
                    entry["arguments"] += call.function.arguments or ""
    assert finish == "tool_calls"
    assert calls[0]["id"] == "toolu_7" and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo"}
    sent = scene.anthropic_fake.requests[0].body
    assert sent["tools"][0]["name"] == "get_weather" and sent["stream"] is True


def test_anthropic_sdk_tool_call_through_an_openai_upstream_streamed(scene: Scene) -> None:
    scene.openai_fake.then(
        Script(
            text="Let me check.", tool_calls=(ToolUse("call_3", "get_weather", {"city": "Rome"}),)
        )
    )
    with scene.anthropic().messages.stream(
        model="gpt-x",
        max_tokens=64,
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[{"name": "get_weather", "input_schema": {"type": "object"}}],
    ) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    text, tool = final.content
    assert text.type == "text" and text.text == "Let me check."
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "Rome"}


def test_tool_results_round_trip_to_the_local_provider(scene: Scene) -> None:
    client = scene.openai()
    messages: Any = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model="local-t", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    (call,) = first.choices[0].message.tool_calls or []
    assert first.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Weather in Oslo?"}  # type: ignore[union-attr]
    messages += [
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "sunny"},
    ]
    second = client.chat.completions.create(model="local-t", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].message.content == "Tool get_weather returned: sunny"


# ── failures ────────────────────────────────────────────────────────────────────────────────


def test_failover_before_the_first_byte(scene: Scene) -> None:
    client = scene.openai()
    messages: Any = [{"role": "user", "content": "hi"}]
    plain = client.chat.completions.create(model="failover-1", messages=messages)
    assert plain.choices[0].message.content == "Hello from the fake upstream."
    streamed = client.chat.completions.create(model="failover-1", messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert len(scene.openai_fake.requests) == 2


def test_each_sdk_raises_when_the_upstream_fails_after_the_first_byte(scene: Scene) -> None:
    scene.openai_fake.then(Script(text="one two three four five", cut_after_events=3))
    stream = scene.openai().chat.completions.create(
        model="gpt-x", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass
    scene.anthropic_fake.then(Script(text="one two three four five", error_after_events=4))
    with (
        pytest.raises(anthropic.APIStatusError),
        scene.anthropic().messages.stream(
            model="claude-x", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
        ) as astream,
    ):
        for _ in astream:
            pass


def test_errors_are_native_envelopes_even_before_the_handler(scene: Scene) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=scene.gateway_url, api_key="sk_nope", max_retries=0).models.list()
    with pytest.raises(openai.NotFoundError) as missing:
        scene.openai().chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.code == "model_not_found"
    bad = requests.post(
        f"{scene.gateway_url}/messages",
        headers={"Authorization": f"Bearer {scene.key}"},
        json={"model": "claude-x", "messages": []},
        timeout=30,
    )
    assert bad.status_code == 400
    assert bad.json()["type"] == "error"
    assert bad.json()["error"]["type"] == "invalid_request_error"


# ── cache ───────────────────────────────────────────────────────────────────────────────────


def test_cache_hit_miss_bypass_and_no_collision(scene: Scene) -> None:
    client = scene.openai()
    messages: Any = [{"role": "user", "content": "cache me"}]

    def ask(**kwargs: Any) -> Any:
        return client.chat.completions.with_raw_response.create(
            model="local-c", messages=messages, **kwargs
        )

    first, second = ask(), ask()
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "HIT")
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    bypass = ask(extra_headers={"Cache-Control": "no-cache"})
    assert bypass.headers["x-cache"] == "BYPASS"
    other = ask(temperature=0.3)
    assert other.headers["x-cache"] == "MISS"
    assert other.headers["x-cache-key"] != first.headers["x-cache-key"]
    ws = scene.workspace_id
    stats = scene.admin("GET", f"/workspaces/{ws}/gateway/cache/stats")
    assert stats["enabled"] is True and stats["hits"] >= 1 and stats["entries"] >= 2
    key = first.headers["x-cache-key"]
    entry = scene.admin("GET", f"/workspaces/{ws}/gateway/cache/entries/{key}")
    assert entry["model"] == "local-c" and entry["response"]["object"] == "chat.completion"
    scene.admin("DELETE", f"/workspaces/{ws}/gateway/cache/entries/{key}")
    assert ask().headers["x-cache"] == "MISS"


# ── rate limits ─────────────────────────────────────────────────────────────────────────────


def test_rate_limit_holds_across_both_workers_with_headers(scene: Scene) -> None:
    statuses = []
    last: Any = None
    for _ in range(5):  # a new connection each time: the two workers share the requests
        response = requests.post(
            f"{scene.gateway_url}/chat/completions",
            headers={"Authorization": f"Bearer {scene.key}", "Connection": "close"},
            json={"model": "limited-1", "messages": [{"role": "user", "content": "hi"}]},
            timeout=30,
        )
        statuses.append(response.status_code)
        last = response
        if response.status_code == 200:
            assert response.headers["X-RateLimit-Limit"] == "60"
    assert statuses[:3] == [200, 200, 200] and statuses[3:] == [429, 429]
    assert int(last.headers["Retry-After"]) >= 1
    assert last.headers["X-RateLimit-Remaining"] == "0"
    with pytest.raises(openai.RateLimitError) as refused:
        scene.openai().chat.completions.create(
            model="limited-1", messages=[{"role": "user", "content": "hi"}]
        )
    assert refused.value.code == "rate_limit_exceeded"


# ── usage ───────────────────────────────────────────────────────────────────────────────────


def test_usage_is_equal_streamed_or_not_and_counts_cached_tokens_once(scene: Scene) -> None:
    scene.anthropic_fake.then(Script(text="a b c", input_tokens=90, cache_read=50, cache_write=10))
    client = scene.openai()
    messages: Any = [{"role": "user", "content": "usage"}]
    whole = client.chat.completions.create(model="claude-u", messages=messages)
    assert whole.usage is not None and whole.usage.prompt_tokens == 90
    # No include_usage: the gateway still records the stream's usage.
    list(client.chat.completions.create(model="claude-u", messages=messages, stream=True))
    streamed, plain = scene.logged(2, "claude-u")
    for entry in (streamed, plain):
        assert (entry["prompt_tokens"], entry["cached_tokens"], entry["completion_tokens"]) == (
            90,
            50,
            5,
        )
    assert streamed["stream"] is True and plain["stream"] is False


# ── streams do not hold the server ──────────────────────────────────────────────────────────


def test_twenty_open_streams_while_the_rest_of_the_api_answers(scene: Scene) -> None:
    scene.openai_fake.then(Script(text=" ".join(["word"] * 12), event_delay_s=0.25))
    started = threading.Barrier(21, timeout=PROMPT_S * 3)
    client = scene.openai()

    def hold_stream() -> str:
        stream = client.chat.completions.create(
            model="gpt-s", messages=[{"role": "user", "content": "slow"}], stream=True
        )
        text = ""
        for i, chunk in enumerate(stream):
            if i == 1:
                started.wait()
            text += "".join(c.delta.content or "" for c in chunk.choices)
        return text

    with ThreadPoolExecutor(max_workers=20) as pool:
        futures = [pool.submit(hold_stream) for _ in range(20)]
        started.wait()  # 20 streams are open and answering
        began = time.monotonic()
        scene.admin("GET", f"/workspaces/{scene.workspace_id}")
        health = requests.get(f"{scene.server.api_url}/health", timeout=PROMPT_S)
        assert health.status_code == 200
        assert time.monotonic() - began < PROMPT_S
        texts = [f.result(timeout=PROMPT_S * 3) for f in futures]
    assert all(t.strip() == " ".join(["word"] * 12) for t in texts)
