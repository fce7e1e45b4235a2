"""The runs and run-output operations through the API (every answer checked against the spec).

Runs are queued and executed here through the queue's own functions (``run_queue``), as the
executor and the run-creating operations do.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask import Flask
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from server.domain import run_queue
from server.domain.run_queue import Lease, LogLine, NewRun, Outcome, StepWrite
from server.domain.unit import UnitOfWork, unit_of_work
from tests.conftest import AppFactory, Gantry, check_status

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


class Runs:
    """A workspace of the bootstrap admin, and the queue's functions on the app's database."""

    def __init__(self, gantry: Gantry) -> None:
        self.gantry = gantry
        self.admin = gantry.admin
        self.workspace_id: str = gantry.workspace(gantry.admin)["id"]
        self.database = gantry.app.extensions["gantry"].database

    def unit(self) -> Any:
        return unit_of_work(self.database.write_sessionmaker, now=datetime.now(UTC))

    def enqueue(self, **fields: Any) -> str:
        with self.unit() as uow:
            given: dict[str, Any] = {
                "source_type": "workflow",
                "source_id": "wfl_" + "A" * 24,
                "input": {"q": 1},
                **fields,
            }
            new = NewRun(workspace_id=self.workspace_id, **given)
            return run_queue.enqueue(uow, new).run.id

    def claim(self) -> Lease:
        with self.unit() as uow:
            (lease,) = run_queue.claim_next(uow, owner="test")
            return lease

    def act(self, do: Callable[[UnitOfWork], Any]) -> Any:
        with self.unit() as uow:
            return do(uow)

    def upload(
        self,
        run_id: str,
        data: bytes,
        *,
        filename: str = "shot.txt",
        claimed: str = "text/plain",
        **fields: str,
    ) -> Any:
        values: dict[str, Any] = {
            "file": FileStorage(io.BytesIO(data), filename, content_type=claimed)
        }
        values.update(fields)
        boundary, body = encode_multipart(values)
        return self.admin.post(
            f"/runs/{run_id}/artifacts",
            data=body,
            content_type=f"multipart/form-data; boundary={boundary}",
        )


@pytest.fixture
def runs(gantry: Gantry) -> Runs:
    return Runs(gantry)


def test_a_queued_run_is_read_cancelled_and_retried(runs: Runs) -> None:
    run_id = runs.enqueue()
    run = runs.admin.get(f"/runs/{run_id}", expect=200).json
    assert run["status"] == "queued" and run["attempt"] == 0
    assert run["source"] == {"type": "workflow", "id": "wfl_" + "A" * 24}
    assert run["usage"] == {
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "total_tokens": 0,
        "cost_usd": 0.0,
    }
    runs.admin.post(f"/runs/{run_id}/retry", expect=409, code="invalid_transition")
    runs.admin.post(
        f"/runs/{run_id}/input", json={"input": 1}, expect=409, code="invalid_transition"
    )
    cancelled = runs.admin.post(f"/runs/{run_id}/cancel", expect=200).json
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    refused = runs.admin.post(f"/runs/{run_id}/cancel", expect=409, code="invalid_transition")
    assert refused.json["state"] == "cancelled"
    again = runs.admin.post(f"/runs/{run_id}/retry", headers={"Idempotency-Key": "r-1"})
    retried = check_status(again, 202)
    assert again.headers["Location"] == f"/api/v1/runs/{retried['id']}"
    assert retried["retry_of"] == run_id and retried["status"] == "queued"
    assert retried["input"] == {"q": 1}
    replay = runs.admin.post(f"/runs/{run_id}/retry", headers={"Idempotency-Key": "r-1"})
    assert check_status(replay, 202)["id"] == retried["id"]
    audit = runs.admin.get(f"/workspaces/{runs.workspace_id}/audit-log", expect=200).json
    actions = [(e["action"], e["target"]["id"]) for e in audit["items"]]
    assert ("run.cancelled", run_id) in actions
    assert ("run.retried", retried["id"]) in actions
    assert sum(1 for action, _ in actions if action == "run.retried") == 1


def test_input_resumes_a_waiting_run_and_cancel_asks_a_running_one_to_stop(runs: Runs) -> None:
    stopping = runs.enqueue()
    lease = runs.claim()
    asked = runs.admin.post(f"/runs/{stopping}/cancel", expect=200).json
    assert (asked["status"], asked["cancel_requested"]) == ("running", True)
    beat = runs.act(lambda uow: run_queue.heartbeat(uow, lease))
    assert beat.cancel_requested
    runs.act(lambda uow: run_queue.complete(uow, lease, Outcome("cancelled")))
    assert runs.admin.get(f"/runs/{stopping}", expect=200).json["status"] == "cancelled"

    run_id = runs.enqueue()
    lease = runs.claim()
    runs.act(
        lambda uow: run_queue.record_step(uow, lease, StepWrite("ok", "OK?", "approval", "waiting"))
    )
    runs.act(lambda uow: run_queue.wait_for_input(uow, lease, release=True))
    waiting = runs.admin.get(f"/runs/{run_id}", expect=200).json
    assert (waiting["status"], waiting["lease_expires_at"]) == ("waiting", None)
    resumed = runs.admin.post(
        f"/runs/{run_id}/input", json={"input": {"approved": True}}, expect=200
    ).json
    assert resumed["status"] == "running"
    (step,) = runs.admin.get(f"/runs/{run_id}/steps", expect=200).json["steps"]
    assert (step["status"], step["output"]) == ("succeeded", {"approved": True})
    again = runs.claim()  # claimable again, still running, no new attempt
    assert again.run_id == run_id and again.attempt == 1
    runs.act(lambda uow: run_queue.complete(uow, again, Outcome("succeeded", output="yes")))
    done = runs.admin.get(f"/runs/{run_id}", expect=200).json
    assert (done["status"], done["output"]) == ("succeeded", "yes")


def test_the_trace_is_a_tree_and_the_log_is_followed_by_seq(runs: Runs) -> None:
    run_id = runs.enqueue()
    lease = runs.claim()
    for write in (
        StepWrite("plan", "Plan", "agent", "running"),
        StepWrite("search", "Search", "tool", "succeeded", parent_key="plan", output=[1]),
        StepWrite("answer", "Answer", "model", "succeeded", prompt_tokens=3, completion_tokens=4),
    ):
        runs.act(lambda uow, write=write: run_queue.record_step(uow, lease, write))
    trace = runs.admin.get(f"/runs/{run_id}/steps", expect=200).json
    assert trace["run_id"] == run_id
    assert [s["key"] for s in trace["steps"]] == ["plan", "answer"]
    (child,) = trace["steps"][0]["children"]
    assert child["key"] == "search" and child["parent_step_id"] == trace["steps"][0]["id"]
    assert trace["steps"][1]["usage"]["total_tokens"] == 7
    runs.act(
        lambda uow: run_queue.append_logs(
            uow,
            lease,
            [LogLine(f"line {n}", channel="stdout" if n % 2 else "system") for n in range(1, 6)],
        )
    )
    path = f"/runs/{run_id}/logs"
    page = runs.admin.get(path, query={"limit": 2, "include_total": True}, expect=200).json
    assert [line["seq"] for line in page["items"]] == [1, 2] and page["total"] == 5
    rest = runs.admin.get(path, query={"limit": 2, "cursor": page["next_cursor"]}, expect=200).json
    assert [line["seq"] for line in rest["items"]] == [3, 4]
    after = runs.admin.get(path, query={"after_seq": 3}, expect=200).json
    assert [line["text"] for line in after["items"]] == ["line 4", "line 5"]
    assert after["next_cursor"] is None
    stdout = runs.admin.get(path, query={"channel": "stdout"}, expect=200).json
    assert [line["seq"] for line in stdout["items"]] == [1, 3, 5]
    assert runs.admin.get(path, query={"after_seq": 5}, expect=200).json["items"] == []


def test_runs_are_listed_filtered_and_counted(runs: Runs) -> None:
    first = runs.enqueue()
    second = runs.enqueue(source_type="agent", source_id="agt_" + "B" * 24)
    lease = runs.claim()
    runs.act(lambda uow: run_queue.complete(uow, lease, Outcome("failed", error={"message": "x"})))
    base = f"/workspaces/{runs.workspace_id}/runs"
    every = runs.admin.get(base, query={"include_total": True}, expect=200).json
    assert [r["id"] for r in every["items"]] == [second, first] and every["total"] == 2
    agents = runs.admin.get(base, query={"source_type": "agent"}, expect=200).json
    assert [r["id"] for r in agents["items"]] == [second]
    failed = runs.admin.get(base, query={"status": "failed"}, expect=200).json
    assert [r["id"] for r in failed["items"]] == [first]
    stats = runs.admin.get(f"{base}/stats", expect=200).json
    assert stats["group_by"] == "status"
    by_status = {g["key"]: g for g in stats["groups"]}
    assert by_status["failed"]["runs"] == 1 and by_status["failed"]["success_rate"] == 0.0
    assert by_status["queued"]["success_rate"] is None
    sources = runs.admin.get(f"{base}/stats", query={"group_by": "source"}, expect=200).json
    assert {g["key"] for g in sources["groups"]} == {
        "workflow:wfl_" + "A" * 24,
        "agent:agt_" + "B" * 24,
    }


def test_artifacts_are_sniffed_streamed_and_deleted(runs: Runs) -> None:
    run_id = runs.enqueue()
    runs.claim()
    made = runs.upload(
        run_id, PNG, filename="../screens/shot.png", claimed="text/plain", kind="screenshot"
    )
    artifact = check_status(made, 201)
    assert made.headers["Location"] == f"/api/v1/artifacts/{artifact['id']}/content"
    assert (artifact["name"], artifact["kind"], artifact["content_type"]) == (
        "shot.png",
        "screenshot",
        "image/png",
    )
    assert artifact["size_bytes"] == len(PNG)
    listed = runs.admin.get(f"/runs/{run_id}/artifacts", expect=200).json["items"]
    assert [a["id"] for a in listed] == [artifact["id"]]
    content = f"/artifacts/{artifact['id']}/content"
    whole = runs.admin.get(content, expect=200)
    assert whole.data == PNG and whole.mimetype == "image/png"
    assert whole.headers["Content-Disposition"].startswith('attachment; filename="shot.png"')
    assert whole.headers["ETag"] == f'"{artifact["sha256"]}"'
    part = runs.admin.get(content, headers={"Range": "bytes=8-15"}, expect=206)
    assert part.data == PNG[8:16]
    assert part.headers["Content-Range"] == f"bytes 8-15/{len(PNG)}"
    tail = runs.admin.get(content, headers={"Range": "bytes=-4"}, expect=206)
    assert tail.data == PNG[-4:]
    outside = runs.admin.get(content, headers={"Range": f"bytes={len(PNG)}-"}, expect=416)
    assert outside.headers["Content-Range"] == f"bytes */{len(PNG)}"
    runs.admin.delete(f"/artifacts/{artifact['id']}", expect=204)
    runs.admin.get(content, expect=404)
    runs.admin.delete(f"/artifacts/{artifact['id']}", expect=404)
    text = check_status(runs.upload(run_id, b'{"ok": true}', filename="r.json"), 201)
    assert (text["content_type"], text["kind"]) == ("application/json", "file")


def test_uploads_are_limited_and_need_a_live_run(
    make_app: AppFactory, gantry_for: Callable[[Flask], Gantry]
) -> None:
    runs = Runs(gantry_for(make_app(artifact_max_bytes=1024)))
    run_id = runs.enqueue()
    check_status(runs.upload(run_id, b"x" * 1000), 201)
    check_status(runs.upload(run_id, b"x" * (1024 + (64 << 10))), 413, "payload_too_large")
    runs.admin.post(f"/runs/{run_id}/cancel", expect=200)
    check_status(runs.upload(run_id, b"late"), 409, "invalid_transition")
