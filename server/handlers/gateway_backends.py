"""gateway_backends: a provider plus an upstream model, with health and statistics."""

from __future__ import annotations

from typing import Any

from server.domain import backends
from server.domain.backends import BackendTestResult
from server.gateway import probe
from server.handlers._common import API_BASE
from server.runtime.context import AfterCommit, Reply, Request
from server.runtime.present import Overlay


def list_backends(req: Request) -> dict[str, Any]:
    """The workspace's backends, with their health."""
    assert req.page is not None
    found, total = backends.list_backends(
        req.work,
        req.path["workspace_id"],
        provider_id=req.query.get("provider_id"),
        enabled=req.query.get("enabled"),
        health=req.query.get("health"),
        window=req.page,
    )
    return req.page.respond(found, total=total)


def create_backend(req: Request) -> Reply:
    """Create a backend of one of the workspace's providers."""
    backend = backends.create_backend(req.work, req.path["workspace_id"], req.body)
    return Reply(
        backend, status=201, headers={"Location": f"{API_BASE}/gateway/backends/{backend.id}"}
    )


def get_backend(req: Request) -> Overlay:
    """One backend, with its statistics from the request log."""
    backend = backends.get_backend(req.work, req.path["workspace_id"], req.path["backend_id"])
    return Overlay(backend, stats=backends.backend_stats(req.work, backend))


def update_backend(req: Request) -> Any:
    """Enable or disable a backend, or change its name, model, weight or timeout."""
    return backends.update_backend(
        req.work, req.path["workspace_id"], req.path["backend_id"], req.body
    )


def delete_backend(req: Request) -> None:
    """Delete a backend no route uses."""
    backends.delete_backend(req.work, req.path["workspace_id"], req.path["backend_id"])


def test_backend(req: Request) -> AfterCommit:
    """Probe the backend through the data plane once the request's transaction has ended
    (a slow upstream holds no lock); the outcome becomes its health."""
    workspace_id = req.path["workspace_id"]
    target = backends.prepare_backend_test(
        req.work, workspace_id, req.path["backend_id"], secrets=req.state.secret_box
    )

    def probed() -> BackendTestResult:
        outcome = probe.probe_backend(target.config)
        return backends.record_backend_test(req.work, workspace_id, target, outcome)

    return AfterCommit(probed)
