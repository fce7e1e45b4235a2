"""Who acts: the authenticated caller of a request, as the rules see it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and with which credential."""

    kind: str  # "session" | "pat" | "api_key"
    credential_id: str
    label: str
    user_id: str | None = None
    is_superadmin: bool = False
    scopes: frozenset[str] = field(default_factory=frozenset)
    workspace_id: str | None = None  # API keys act in one workspace …
    key_role: str | None = None  # … with a fixed role

    @property
    def is_user(self) -> bool:
        """Whether the credential belongs to a user (session or personal access token)."""
        return self.kind in ("session", "pat")

    @property
    def actor_type(self) -> str:
        """The audit actor type of this principal."""
        return "api_key" if self.kind == "api_key" else "user"

    @property
    def actor_id(self) -> str:
        """The audit actor id: the user, or the API key."""
        return self.user_id if self.user_id is not None else self.credential_id
