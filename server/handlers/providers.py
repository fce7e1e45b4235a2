"""providers: a workspace's LLM providers; secrets are write-only and sealed at rest."""

from __future__ import annotations

from typing import Any

from server.domain import providers
from server.domain.providers import ProviderTestResult
from server.gateway import probe
from server.handlers._common import API_BASE
from server.runtime.context import AfterCommit, Reply, Request


def list_providers(req: Request) -> dict[str, Any]:
    """The workspace's providers (secrets only as ``has_api_key``/``has_headers``)."""
    assert req.page is not None
    found, total = providers.list_providers(
        req.work, req.path["workspace_id"], provider_type=req.query.get("type"), window=req.page
    )
    return req.page.respond(found, total=total)


def create_provider(req: Request) -> Reply:
    """Create a provider; its secrets are sealed and never shown again."""
    provider = providers.create_provider(
        req.work, req.path["workspace_id"], req.body, secrets=req.state.secret_box
    )
    return Reply(provider, status=201, headers={"Location": f"{API_BASE}/providers/{provider.id}"})


def get_provider(req: Request) -> Any:
    """One provider of the workspace that owns it."""
    return providers.get_provider(req.work, req.path["workspace_id"], req.path["provider_id"])


def update_provider(req: Request) -> Any:
    """Change a provider or rotate its secrets."""
    return providers.update_provider(
        req.work,
        req.path["workspace_id"],
        req.path["provider_id"],
        req.body,
        secrets=req.state.secret_box,
    )


def delete_provider(req: Request) -> None:
    """Delete a provider no backend uses."""
    providers.delete_provider(req.work, req.path["workspace_id"], req.path["provider_id"])


def test_provider(req: Request) -> AfterCommit:
    """Probe the provider through the data plane once the request's transaction has ended
    (a slow upstream holds no lock), then record the outcome."""
    workspace_id = req.path["workspace_id"]
    target = providers.prepare_provider_test(
        req.work, workspace_id, req.path["provider_id"], secrets=req.state.secret_box
    )

    def probed() -> ProviderTestResult:
        outcome = probe.probe_provider(target.config, target.models)
        return providers.record_provider_test(req.work, workspace_id, target, outcome)

    return AfterCommit(probed)
