"""What a rule refuses, without HTTP: the runtime maps each kind to its status.

Each error has a stable ``code`` (the problem document's ``code``) and a human ``detail``;
``extra`` adds members to the problem (for example the current ``state`` of a refused
transition), ``errors`` names the failing input fields as ``(field, message)`` pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar


class RuleError(Exception):
    """Root of the errors a domain function raises for what its caller may not do."""

    code: ClassVar[str] = "invalid"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        errors: Iterable[tuple[str, str]] = (),
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.errors = tuple(errors)
        self.extra: dict[str, Any] = dict(extra or {})


class Invalid(RuleError):
    """The input breaks a rule the schema cannot state (a date Python cannot read, a secret
    that is not the current one)."""

    code = "validation_failed"


class NotAuthenticated(RuleError):
    """The presented credentials do not identify anyone (a wrong password)."""

    code = "unauthenticated"


class Forbidden(RuleError):
    """The actor may not do this (a role above its own, a superadmin-only change)."""

    code = "forbidden"


class NotFound(RuleError):
    """The thing does not exist, or is not visible to the actor."""

    code = "not_found"


class Conflict(RuleError):
    """The change clashes with the current state (a duplicate, the last owner, a transition
    the state machine does not allow)."""

    code = "conflict"
