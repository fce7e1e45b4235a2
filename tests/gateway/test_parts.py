"""The engine's parts on their own: routes, SSE framing, the local model, limits, the shared
stores' counting check, and what the package may import."""

from __future__ import annotations

import ast
import random
from pathlib import Path

import pytest

from server.gateway import routing, sse
from server.gateway.chat import ChatRequest, Message, TextPart, Tool, ToolChoice, ToolResult
from server.gateway.local import LocalUpstream, answer, count_tokens
from server.gateway.ratelimit import GatewayLimiter, Quota, quota_for
from server.storage.db import Database
from server.storage.rate_limits import SqlRateLimitStore
from tests.gateway.conftest import MemoryHits, backend, provider, route

ROOT = Path(__file__).resolve().parents[2]


# ── routing ─────────────────────────────────────────────────────────────────────────────────


def test_the_first_enabled_route_by_priority_whose_pattern_matches_wins() -> None:
    local = backend(provider("local"))
    routes = [
        route(local, id="rte_late", patterns=("gpt-4o*",), priority=50),
        route(local, id="rte_off", patterns=("gpt-*",), priority=1, enabled=False),
        route(local, id="rte_early", patterns=("gpt-4o-mini", "fast"), priority=10),
    ]
    assert routing.resolve(routes, "gpt-4o-mini").id == "rte_early"  # type: ignore[union-attr]
    assert routing.resolve(routes, "gpt-4o").id == "rte_late"  # type: ignore[union-attr]
    assert routing.resolve(routes, "fast").id == "rte_early"  # type: ignore[union-attr]
    assert routing.resolve(routes, "GPT-4o") is None  # case-sensitive
    assert routing.resolve(routes, "claude") is None


def test_failover_order_is_by_priority_and_weighted_order_follows_the_weights() -> None:
    a = backend(provider("local"), id="a", priority=2, weight=1)
    b = backend(provider("local"), id="b", priority=1, weight=9)
    off = backend(provider("local"), id="off", priority=0, enabled=False)
    assert [x.id for x in routing.attempt_order(route(a, b, off), random.Random(1))] == ["b", "a"]
    weighted = route(a, b, off, strategy="weighted")
    rng = random.Random(3)
    firsts = [routing.attempt_order(weighted, rng)[0].id for _ in range(1000)]
    assert 850 < firsts.count("b") < 950
    assert sorted(x.id for x in routing.attempt_order(weighted, rng)) == ["a", "b"]


def test_models_lists_literal_patterns_and_upstream_models_that_resolve() -> None:
    routes = [
        route(backend(provider("local"), "up-1"), id="r1", patterns=("fast", "gpt-*")),
        route(backend(provider("local"), "claude-up"), id="r2", patterns=("smart",)),
    ]
    # "claude-up" resolves to no route, so it is not offered.
    assert [m for m, _ in routing.routable_models(routes)] == ["fast", "smart"]


# ── SSE ─────────────────────────────────────────────────────────────────────────────────────


def test_events_are_read_whatever_the_chunking_and_line_endings() -> None:
    raw = b": keep-alive\r\n\r\nevent: ping\r\ndata: {}\r\n\r\ndata: a\ndata: b\n\ndata: [DONE]\n\n"
    for size in (1, 2, 3, 7, len(raw)):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        assert [(e.kind, e.data) for e in sse.read_events(chunks)] == [
            ("ping", "{}"),
            (None, "a\nb"),
            (None, "[DONE]"),
        ]


def test_frames() -> None:
    assert sse.event("message_stop", {"type": "message_stop"}) == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    )
    assert sse.data({"a": 1}) == b'data: {"a":1}\n\n'


# ── the local model ─────────────────────────────────────────────────────────────────────────


def _ask(*messages: Message, **kwargs: object) -> ChatRequest:
    return ChatRequest(model="m", messages=messages, **kwargs)  # type: ignore[arg-type]


def _user(text: str) -> Message:
    return Message("user", (TextPart(text),))


def test_the_local_model_is_deterministic_and_counts_tokens() -> None:
    request = _ask(_user("Hello, world"), system="Be brief.")
    first, second = answer(request, "m"), answer(request, "m")
    assert first == second
    assert first.text == "You said: Hello, world"
    assert first.usage.input_tokens == count_tokens("Be brief. Hello, world") == 6
    assert first.usage.output_tokens == 6


def test_the_local_model_honours_limits_and_stop_sequences() -> None:
    cut = answer(_ask(_user("one two three four"), max_tokens=3), "m")
    assert (cut.text, cut.stop_reason) == ("You said:", "max_tokens")
    stopped = answer(_ask(_user("one two three"), stop=("two",)), "m")
    assert (stopped.text, stopped.stop_reason, stopped.stop_sequence) == (
        "You said: one ",
        "stop_sequence",
        "two",
    )


def test_the_local_model_calls_tools_and_reads_their_results() -> None:
    tool = Tool(
        "lookup",
        None,
        {
            "type": "object",
            "properties": {
                "q": {"type": "string"},
                "n": {"type": "integer"},
                "mode": {"enum": ["fast", "slow"]},
            },
        },
    )
    called = answer(_ask(_user("find cats"), tools=(tool,)), "m")
    assert called.stop_reason == "tool_use"
    (call,) = called.parts
    assert call.arguments == '{"q":"find cats","n":2,"mode":"fast"}'  # type: ignore[union-attr]
    none = answer(_ask(_user("find cats"), tools=(tool,), tool_choice=ToolChoice("none")), "m")
    assert none.stop_reason == "end"
    history = (
        _user("find cats"),
        Message("assistant", called.parts),
        Message("user", (ToolResult(call.id, "3 cats"),)),  # type: ignore[union-attr]
    )
    assert answer(_ask(*history, tools=(tool,)), "m").text == "Tool lookup returned: 3 cats"


def test_the_local_stream_makes_the_same_answer() -> None:
    from server.gateway.chat import collect

    request = _ask(_user("stream this, please"))
    whole = answer(request, "m")
    events = list(LocalUpstream().stream(request, backend(provider("local"), "m")))
    assert collect(events, id=whole.id, model="m") == whole


# ── rate limits ─────────────────────────────────────────────────────────────────────────────


def test_a_route_limit_replaces_the_default_and_counts_apart() -> None:
    default = Quota(120, 20)
    assert quota_for(None, default) == (default, "")
    limited = route(backend(provider("local")), id="rte_x", rpm=6)
    assert quota_for(limited, default) == (Quota(6, 6), ":rte_x")
    assert Quota(120, 20).window == 10.0


def test_the_limiter_reports_where_the_caller_stands() -> None:
    now = [1000.0]
    limiter = GatewayLimiter(MemoryHits(), Quota(60, 2), clock=lambda: now[0])
    first, second, third = (limiter.check("key", None) for _ in range(3))
    assert (first.allowed, first.remaining, first.reset_s) == (True, 1, 2)
    assert (second.allowed, second.remaining) == (True, 0)
    assert (third.allowed, third.retry_after_s) == (False, 2)
    assert third.headers()["x-ratelimit-reset-requests"] == "2s"
    now[0] += 2.01
    assert limiter.check("key", None).allowed


def test_the_shared_sql_store_admits_and_counts(database_url: str, tmp_path: Path) -> None:
    database = Database.from_url(database_url, tmp_path)
    database.migrate()
    try:
        store = SqlRateLimitStore(database.write_engine)
        assert store.admit("k", 2, 10.0, 100.0) == (None, 1, 110.0)
        assert store.admit("k", 2, 10.0, 101.0) == (None, 2, 111.0)
        wait, hits, newest = store.admit("k", 2, 10.0, 102.0)
        assert (wait, hits, newest) == (pytest.approx(8.0), 2, 111.0)
        assert store.take("k", 2, 10.0, 110.5) is None  # the first hit has left the window
    finally:
        database.dispose()


# ── layering ────────────────────────────────────────────────────────────────────────────────


def test_the_engine_imports_flask_only_to_respond_and_no_orm() -> None:
    offending = []
    for path in sorted((ROOT / "server" / "gateway").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                flask = name.split(".")[0] in ("flask", "werkzeug") and path.name != "responses.py"
                orm = name.startswith(("server.storage", "server.runtime")) or (
                    name.startswith("sqlalchemy") and name != "sqlalchemy.orm"
                )
                if flask or orm:
                    offending.append((path.name, name))
    assert offending == []


def test_the_shared_redis_store_admits_and_counts() -> None:
    import os
    import secrets

    url = os.environ.get("GANTRY_TEST_REDIS_URL", "").strip()
    if not url:
        pytest.skip("GANTRY_TEST_REDIS_URL is not set")
    from server.runtime.ratelimit_redis import RedisRateLimitStore

    store = RedisRateLimitStore.from_url(url, prefix=f"gantry-test:{secrets.token_hex(6)}:")
    try:
        assert store.admit("k", 2, 10.0, 100.0) == (None, 1, 110.0)
        assert store.admit("k", 2, 10.0, 101.0) == (None, 2, 111.0)
        wait, hits, newest = store.admit("k", 2, 10.0, 102.0)
        assert (wait, hits, newest) == (pytest.approx(8.0), 2, 111.0)
    finally:
        for name in store.client.scan_iter(match=store.prefix + "*"):
            store.client.delete(name)
        store.close()
