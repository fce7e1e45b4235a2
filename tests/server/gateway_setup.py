"""Builders for the gateway's control-plane tests: providers, backends and routes made through
the API, and a small upstream on 127.0.0.1 for the ``test`` actions."""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.conftest import Api

_names = itertools.count(1)


def name(stem: str) -> str:
    return f"{stem}-{next(_names)}"


def provider(client: Api, workspace_id: str, **fields: Any) -> dict[str, Any]:
    body = {"name": name("prv"), "type": "local", **fields}
    made: dict[str, Any] = client.post(
        f"/workspaces/{workspace_id}/providers", json=body, expect=201
    ).json
    return made


def backend(
    client: Api, workspace_id: str, provider_id: str | None = None, **fields: Any
) -> dict[str, Any]:
    if provider_id is None:
        provider_id = provider(client, workspace_id)["id"]
    body = {"name": name("bke"), "provider_id": provider_id, "upstream_model": "local-1", **fields}
    made: dict[str, Any] = client.post(
        f"/workspaces/{workspace_id}/gateway/backends", json=body, expect=201
    ).json
    return made


def route(client: Api, workspace_id: str, *backend_ids: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": name("rte"),
        "model_patterns": ["gpt-*"],
        "backends": [{"backend_id": b} for b in backend_ids],
        **fields,
    }
    made: dict[str, Any] = client.post(
        f"/workspaces/{workspace_id}/gateway/routes", json=body, expect=201
    ).json
    return made


@dataclass
class FakeUpstream:
    """An OpenAI-style upstream: ``GET /v1/models`` and ``POST /v1/chat/completions``, which
    answer ``status`` (200 by default) after ``delay_s`` and remember each request's headers."""

    status: int = 200
    delay_s: float = 0.0
    models: list[str] = field(default_factory=lambda: ["gpt-4o", "gpt-4o-mini"])
    seen: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    def __call__(self, environ: Any, start_response: Any) -> Any:
        request = Request(environ)
        self.seen.append(dict(request.headers))
        time.sleep(self.delay_s)
        if self.status != 200:
            body = {"error": {"message": "bad key sk-test-upstream", "type": "auth", "code": None}}
            return Response(json.dumps(body), status=self.status, mimetype="application/json")(
                environ, start_response
            )
        if request.path.endswith("/models"):
            body = {"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]}
        else:
            body = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "pong"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        return Response(json.dumps(body), mimetype="application/json")(environ, start_response)


@contextmanager
def fake_upstream(**settings: Any) -> Iterator[FakeUpstream]:
    """A ``FakeUpstream`` served on 127.0.0.1 for the block."""
    app = FakeUpstream(**settings)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.base_url = f"http://127.0.0.1:{server.server_port}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=5)
