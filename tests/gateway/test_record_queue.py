"""The request log's background writer: calls written in the order they finished, many per
write under load, nothing lost at a normal exit; and behind the HTTP data plane, the log entry
is queued, not written on the thread that serves the client."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from server.gateway.engine import Caller, Engine
from server.gateway.local import LocalUpstream
from server.gateway.ratelimit import GatewayLimiter, Quota
from server.gateway.record import CallRecord, Finished
from server.gateway.record_queue import RecordQueue
from tests.conftest import AppFactory
from tests.gateway.conftest import MemoryCache, MemoryHits, MemoryRecorder, backend, provider
from tests.gateway.conftest import route as route_of

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def call(n: int) -> CallRecord:
    return CallRecord(
        id=f"gwr_{n}",
        workspace_id="ws_1",
        credential_id=None,
        run_id=None,
        api="openai",
        model="m",
        stream=False,
        created_at=NOW,
    )


class Batches:
    """A ``BatchRecorder`` that keeps each batch; ``gate`` holds the first write back."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def record_all(self, finished: Sequence[Finished]) -> None:
        self.gate.wait(10)
        self.batches.append([f.call.id for f in finished])


def test_calls_are_written_in_order_and_together_when_they_wait() -> None:
    target = Batches()
    writer = RecordQueue(target, batch=4)
    target.gate.clear()  # the writer takes the first call and waits; the rest queue up
    for n in range(10):
        writer.record(call(n), cache_save=None, cache_hit=None)
    assert not writer.flush(timeout=0.05)
    target.gate.set()
    assert writer.flush(timeout=10)
    written = [id_ for batch in target.batches for id_ in batch]
    assert written == [f"gwr_{n}" for n in range(10)]
    assert max(len(batch) for batch in target.batches) == 4
    writer.close()


def test_a_failed_write_does_not_stop_the_writer() -> None:
    class Flaky(Batches):
        def record_all(self, finished: Sequence[Finished]) -> None:
            if any(f.call.id == "gwr_0" for f in finished):
                raise RuntimeError("the database went away")
            super().record_all(finished)

    target = Flaky()
    writer = RecordQueue(target, batch=1)
    for n in range(3):
        writer.record(call(n), cache_save=None, cache_hit=None)
    assert writer.flush(timeout=10)
    assert target.batches == [["gwr_1"], ["gwr_2"]]
    writer.close()


def test_what_is_queued_is_written_before_the_process_exits(tmp_path: Path) -> None:
    out = tmp_path / "written.txt"
    script = f"""
import time
from datetime import UTC, datetime
from server.gateway.record import CallRecord
from server.gateway.record_queue import RecordQueue

class Slow:
    def record_all(self, finished):
        time.sleep(0.01)
        with open({str(out)!r}, "a") as f:
            f.writelines(one.call.id + "\\n" for one in finished)

writer = RecordQueue(Slow(), batch=5)
for n in range(50):
    writer.record(
        CallRecord(f"gwr_{{n}}", "ws_1", None, None, "openai", "m", False, datetime.now(UTC)),
        cache_save=None,
        cache_hit=None,
    )
"""
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert out.read_text().split() == [f"gwr_{n}" for n in range(50)]


def test_what_an_http_server_runs_queues_the_log_entry_unless_the_cache_was_used() -> None:
    cache = MemoryCache()
    now, later = MemoryRecorder(cache=cache), MemoryRecorder(cache=cache)
    idle: list[bool] = []
    engine = Engine(
        upstreams={"local": LocalUpstream()},
        limiter=GatewayLimiter(MemoryHits(), Quota(120, 20), clock=lambda: 1000.0),
        cache=cache,
        recorder=now,
        queue=later,
        database_idle=lambda: idle.append(True),
        clock=lambda: NOW,
    )
    caller = Caller(workspace_id="ws_1", credential_id="key_1")
    plain = [route_of(backend(provider("local"), "local-1"), patterns=("plain",))]
    cached = [route_of(backend(provider("local"), "local-1"), patterns=("cached",), cache=True)]

    def send(model: str, routes: Any, **extra: Any) -> None:
        body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
        answer = engine.serve("openai", caller, body, routes)
        if answer.frames is not None:
            b"".join(answer.frames)
        answer.after_sending()()

    send("plain", plain)
    send("plain", plain, stream=True)
    assert ([c.stream for c in later.calls], now.calls) == ([False, True], [])
    send("cached", cached)  # stored in the cache: written at once
    send("cached", cached)  # a hit: written at once
    assert [c.cache for c in now.calls] == ["MISS", "HIT"] and len(later.calls) == 2
    assert idle == [True] * 4  # each call, once its database work was done


def test_a_gateway_calls_log_entry_is_queued_then_written(
    make_app: AppFactory, gantry_for: Any
) -> None:
    gantry = gantry_for(make_app())
    ws = gantry.workspace(gantry.admin)["id"]
    key = gantry.api_key(ws, gantry.admin, scopes=("gateway",))["key"]
    provider = gantry.admin.post(
        f"/workspaces/{ws}/providers", json={"name": "local", "type": "local"}, expect=201
    ).json
    backend = gantry.admin.post(
        f"/workspaces/{ws}/gateway/backends",
        json={"name": "local", "provider_id": provider["id"], "upstream_model": "local-1"},
        expect=201,
    ).json
    gantry.admin.post(
        f"/workspaces/{ws}/gateway/routes",
        json={"name": "all", "model_patterns": ["*"], "backends": [{"backend_id": backend["id"]}]},
        expect=201,
    )
    engine = gantry.app.extensions["gantry"].gateway
    queued: list[str] = []
    record = engine.queue.record

    def spy(call: CallRecord, **kwargs: Any) -> None:
        queued.append(call.id)
        record(call, **kwargs)

    engine.queue.record = spy
    response = gantry.admin.client.post(
        "/api/v1/llm/v1/chat/completions",
        json={"model": "any", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 200
    response.close()
    assert len(queued) == 1
    assert engine.queue.flush(timeout=10)
    items = gantry.admin.get(f"/workspaces/{ws}/gateway/requests", expect=200).json["items"]
    assert [item["id"] for item in items] == queued
    engine.queue.close()
