"""LLM providers: unique names per workspace, secrets sealed at rest and never shown, and no
deletion while a backend uses one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from generated import models
from server.domain.errors import Conflict, Invalid, NotFound
from server.domain.listing import Window
from server.domain.secrets import SecretBox
from server.domain.unit import UnitOfWork
from server.domain.values import optional_text, plain, text, unique
from server.gateway.config import ProviderConfig
from server.security import new_id
from server.storage import gateway as gateway_rows
from server.storage import rows
from server.storage.gateway_models import Provider

NAME_TAKEN = "A provider with this name already exists in the workspace."
# Provider types that have no endpoint to default to.
NEEDS_BASE_URL = frozenset({"openai_compatible"})
# Headers the HTTP client owns: an upstream request's framing and routing.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
LOCAL = "local"


class ProbeOutcome(Protocol):
    """What the data plane's probe of an upstream found."""

    @property
    def ok(self) -> bool: ...

    @property
    def latency_ms(self) -> int | None: ...

    @property
    def error(self) -> str | None: ...


class ProviderProbeOutcome(ProbeOutcome, Protocol):
    @property
    def models(self) -> Sequence[str]: ...


@dataclass(frozen=True, slots=True)
class ProviderTestResult:
    """A provider test as the API shows it."""

    ok: bool
    latency_ms: int | None
    models: list[str]
    error: str | None


def list_providers(
    uow: UnitOfWork, workspace_id: str, *, provider_type: str | None, window: Window
) -> tuple[Sequence[Provider], int | None]:
    """The workspace's providers in ``window``, and their count if asked."""
    found = rows.list_by(
        uow.db,
        Provider,
        after=window.after,
        order=window.direction,
        limit=window.limit,
        workspace_id=workspace_id,
        type=provider_type,
    )
    if not window.include_total:
        return found, None
    return found, rows.count_by(uow.db, Provider, workspace_id=workspace_id, type=provider_type)


def get_provider(uow: UnitOfWork, workspace_id: str, provider_id: str) -> Provider:
    """The workspace's provider, or not found."""
    provider = rows.get(uow.db, Provider, provider_id, workspace_id=workspace_id)
    if provider is None:
        raise NotFound("Provider not found.")
    return provider


def create_provider(
    uow: UnitOfWork, workspace_id: str, request: models.ProviderCreate, *, secrets: SecretBox
) -> Provider:
    """A provider of the workspace with its secrets sealed; a taken name is a conflict."""
    name = text(request.name)
    provider_type = text(request.type)
    base_url = optional_text(request.base_url)
    api_key = optional_text(request.api_key)
    headers = _headers(request.extra_headers)
    _check_shape(provider_type, base_url=base_url, api_key=api_key, headers=headers)
    _check_reserved(headers)
    if rows.find(uow.db, Provider, workspace_id=workspace_id, name=name) is not None:
        raise Conflict(NAME_TAKEN, code="already_exists")
    try:
        provider = rows.add(
            uow.db,
            Provider(
                id=new_id("prv_"),
                workspace_id=workspace_id,
                name=name,
                type=provider_type,
                base_url=base_url,
                models=unique(request.models),
                api_key_ciphertext=secrets.seal(api_key) if api_key is not None else None,
                extra_headers_ciphertext=secrets.seal_headers(headers) if headers else None,
                created_at=uow.now,
                updated_at=uow.now,
            ),
        )
    except IntegrityError:  # taken meanwhile by a concurrent request
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "provider.created",
        workspace_id=workspace_id,
        target_type="provider",
        target_id=provider.id,
        summary=f"{uow.actor.label} created provider {provider.name} ({provider.type})",
        metadata={**_public_facts(provider), "header_names": sorted(headers)},
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return provider


def update_provider(
    uow: UnitOfWork,
    workspace_id: str,
    provider_id: str,
    request: models.ProviderUpdate,
    *,
    secrets: SecretBox,
) -> Provider:
    """Rename, re-point or re-list a provider, or rotate its secrets: a new ``api_key`` or
    ``extra_headers`` replaces the stored one (sealed with the current key), ``null`` removes
    it. A result the provider's type does not allow is a conflict. Only a real change is
    recorded, and the record says which secrets changed, never how."""
    provider = get_provider(uow, workspace_id, provider_id)
    sent = request.model_fields_set
    changes: dict[str, Any] = {}
    rotated: list[str] = []
    if "name" in sent and request.name is not None and text(request.name) != provider.name:
        name = text(request.name)
        if rows.find(uow.db, Provider, workspace_id=workspace_id, name=name) is not None:
            raise Conflict(NAME_TAKEN, code="already_exists")
        changes["name"] = {"from": provider.name, "to": name}
        provider.name = name
    if "base_url" in sent and optional_text(request.base_url) != provider.base_url:
        base_url = optional_text(request.base_url)
        changes["base_url"] = {"from": provider.base_url, "to": base_url}
        provider.base_url = base_url
    if "models" in sent and request.models is not None:
        listed = unique(plain(request.models))
        if listed != provider.models:
            changes["models"] = {"from": provider.models, "to": listed}
            provider.models = listed
    if "api_key" in sent:
        api_key = optional_text(request.api_key)
        if api_key is not None or provider.api_key_ciphertext is not None:
            provider.api_key_ciphertext = secrets.seal(api_key) if api_key is not None else None
            rotated.append("api_key" if api_key is not None else "api_key removed")
    if "extra_headers" in sent:
        headers = _headers(request.extra_headers)
        _check_reserved(headers)
        if headers or provider.extra_headers_ciphertext is not None:
            provider.extra_headers_ciphertext = secrets.seal_headers(headers) if headers else None
            rotated.append("extra_headers" if headers else "extra_headers removed")
    try:
        _check_shape(
            provider.type,
            base_url=provider.base_url,
            api_key="set" if provider.api_key_ciphertext is not None else None,
            headers={"set": ""} if provider.extra_headers_ciphertext is not None else {},
        )
    except Invalid as refused:  # valid on its own, but not for this provider's type
        raise Conflict(refused.detail, code="conflict") from None
    if not changes and not rotated:
        return provider
    provider.updated_at = uow.now
    try:
        uow.db.flush()
    except IntegrityError:  # the name was taken meanwhile by a concurrent request
        raise Conflict(NAME_TAKEN, code="already_exists") from None
    uow.audit(
        "provider.updated",
        workspace_id=workspace_id,
        target_type="provider",
        target_id=provider.id,
        summary=(
            f"{uow.actor.label} updated provider {provider.name} "
            f"({', '.join(sorted([*changes, *rotated]))})"
        ),
        metadata={"changes": changes, "secrets": rotated},
    )
    gateway_rows.bump_config_version(uow.db, workspace_id)
    return provider


def delete_provider(uow: UnitOfWork, workspace_id: str, provider_id: str) -> None:
    """Delete a provider no backend uses (409 ``provider_in_use`` otherwise)."""
    provider = gateway_rows.lock_for_delete(uow.db, Provider, provider_id, workspace_id)
    if provider is None:
        raise NotFound("Provider not found.")
    if gateway_rows.provider_in_use(uow.db, provider.id):
        raise Conflict(
            f"Provider {provider.name} is used by a backend; delete or move its backends first.",
            code="provider_in_use",
        )
    uow.audit(
        "provider.deleted",
        workspace_id=workspace_id,
        target_type="provider",
        target_id=provider.id,
        summary=f"{uow.actor.label} deleted provider {provider.name}",
        metadata=_public_facts(provider),
    )
    try:
        gateway_rows.delete_row(uow.db, provider)
    except IntegrityError:  # a backend referenced it meanwhile
        raise Conflict(
            f"Provider {provider.name} is used by a backend.", code="provider_in_use"
        ) from None
    gateway_rows.bump_config_version(uow.db, workspace_id)


@dataclass(frozen=True, slots=True)
class ProviderProbe:
    """What a provider test sends its probe with: the provider as the data plane sees it."""

    provider_id: str
    config: ProviderConfig
    models: tuple[str, ...]


def prepare_provider_test(
    uow: UnitOfWork, workspace_id: str, provider_id: str, *, secrets: SecretBox
) -> ProviderProbe:
    """The first half of a provider test, in the request's transaction: what to probe. The
    probe itself is sent after that transaction has ended, holding no lock while it waits."""
    provider = get_provider(uow, workspace_id, provider_id)
    return ProviderProbe(provider.id, provider_config(provider, secrets), tuple(provider.models))


def record_provider_test(
    uow: UnitOfWork, workspace_id: str, probe: ProviderProbe, outcome: ProviderProbeOutcome
) -> ProviderTestResult:
    """The second half: the outcome, without the provider's secrets, recorded in the audit
    log (a provider deleted meanwhile is not found)."""
    provider = get_provider(uow, workspace_id, probe.provider_id)
    result = ProviderTestResult(
        ok=outcome.ok,
        latency_ms=outcome.latency_ms,
        models=list(dict.fromkeys(outcome.models)),
        error=scrub(outcome.error, probe.config),
    )
    uow.audit(
        "provider.tested",
        workspace_id=workspace_id,
        target_type="provider",
        target_id=provider.id,
        summary=(
            f"{uow.actor.label} tested provider {provider.name}: {'ok' if result.ok else 'failed'}"
        ),
        metadata={"ok": result.ok, "latency_ms": result.latency_ms, "error": result.error},
    )
    return result


def provider_config(provider: Provider, secrets: SecretBox) -> ProviderConfig:
    """The data plane's view of a provider, secrets opened."""
    return ProviderConfig(
        id=provider.id,
        type=provider.type,  # type: ignore[arg-type]  # a CHECK constraint holds it to the enum
        base_url=provider.base_url,
        api_key=(
            secrets.open(provider.api_key_ciphertext)
            if provider.api_key_ciphertext is not None
            else None
        ),
        extra_headers=(
            secrets.open_headers(provider.extra_headers_ciphertext)
            if provider.extra_headers_ciphertext is not None
            else {}
        ),
    )


def scrub(message: str | None, config: ProviderConfig) -> str | None:
    """An upstream's error message without the provider's secrets in it, within the
    schema's limit."""
    if message is None:
        return None
    for secret in (config.api_key, *config.extra_headers.values()):
        if secret and len(secret) >= 4:
            message = message.replace(secret, "[redacted]")
    return message[:2000]


def _headers(value: Any) -> dict[str, str]:
    """The request's extra headers as a plain mapping (empty for null or none)."""
    found = plain(value)
    if not found:
        return {}
    return {str(name): str(plain(text_)) for name, text_ in dict(found).items()}


def _check_shape(
    provider_type: str, *, base_url: str | None, api_key: str | None, headers: Mapping[str, str]
) -> None:
    """What a provider of ``provider_type`` must and must not have."""
    if provider_type in NEEDS_BASE_URL and base_url is None:
        raise Invalid(
            f"A provider of type {provider_type} needs a base_url.",
            errors=[("body.base_url", f"is required for type {provider_type}")],
        )
    if provider_type == LOCAL:
        given = [
            field
            for field, value in (
                ("base_url", base_url),
                ("api_key", api_key),
                ("extra_headers", headers),
            )
            if value
        ]
        if given:
            raise Invalid(
                "The local provider takes no base_url, api_key or extra_headers.",
                errors=[(f"body.{field}", "is not allowed for type local") for field in given],
            )


def _check_reserved(headers: Mapping[str, str]) -> None:
    """Extra headers leave the request's framing and routing to the HTTP client."""
    reserved = sorted(name for name in headers if name.lower() in RESERVED_HEADERS)
    if reserved:
        raise Invalid(
            "Extra headers may not set the request's framing or routing headers.",
            errors=[(f"body.extra_headers.{name}", "is reserved") for name in reserved],
        )


def _public_facts(provider: Provider) -> dict[str, Any]:
    """What the audit trail may say about a provider (never a secret)."""
    return {
        "name": provider.name,
        "type": provider.type,
        "base_url": provider.base_url,
        "has_api_key": provider.has_api_key,
        "has_headers": provider.has_headers,
    }
