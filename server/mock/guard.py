"""The mock's guard: a security requirement holds when credentials of the right kind are there.

Nothing is checked against storage: any bearer token, any Basic credentials, any API key in the
right header, query parameter or cookie will do. An operation whose requirements no alternative
satisfies answers 401 problem+json with a `WWW-Authenticate` challenge for each scheme it
accepts. `x-gantry-min-role` is not enforced.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy.orm import Session
from werkzeug.wrappers import Request as WerkzeugRequest

from server.domain.actors import Principal
from server.runtime.errors import Unauthenticated

REALM = 'realm="mock"'


class MockGuard:
    """`Guard` by presence of credentials (see the module docstring)."""

    def __init__(self, schemes: Mapping[str, Any]) -> None:
        self.schemes = schemes

    def authenticate(
        self, operation: Any, http: WerkzeugRequest, session: Callable[[], Session]
    ) -> Principal | None:
        """The caller when one alternative of the operation's security is satisfied; else 401."""
        del session
        if not operation.security:
            return None
        for alternative in operation.security:
            if all(self.present(name, http) for name in alternative):
                if not alternative:
                    return None  # optional security, nothing presented
                return Principal(kind="mock", credential_id="+".join(alternative), label="mock")
        error = Unauthenticated("Credentials required by this operation's security are missing.")
        error.headers["WWW-Authenticate"] = self.challenge(operation.security)
        raise error

    def authorize(
        self,
        operation: Any,
        principal: Principal | None,
        path: dict[str, Any],
        session: Callable[[], Session],
    ) -> str | None:
        """Roles are not mocked: everyone who got in may go on."""
        del operation, principal, path, session
        return None

    def present(self, name: str, http: WerkzeugRequest) -> bool:
        """Whether the request carries a credential for scheme `name`."""
        scheme = self.schemes.get(name)
        if scheme is None:
            return False
        if scheme.type == "apiKey":
            name = scheme.parameter_name or ""
            if scheme.location == "query":  # the raw query: the mock hides keys from `args`
                query = parse_qsl(http.query_string.decode("latin-1"), keep_blank_values=True)
                return any(key == name and value for key, value in query)
            if scheme.location == "header":
                return bool(http.headers.get(name))
            if scheme.location == "cookie":
                return bool(http.cookies.get(name))
            return False
        if scheme.type == "mutualTLS":
            return True  # the TLS layer's business, not visible here
        kind = scheme.scheme if scheme.type == "http" else "bearer"
        authorization = http.headers.get("Authorization", "")
        given, _, value = authorization.strip().partition(" ")
        return given.lower() == (kind or "").lower() and bool(value.strip())

    def challenge(self, security: tuple[tuple[str, ...], ...]) -> str:
        """One challenge per scheme an alternative names, in a fixed order."""
        challenges: list[str] = []
        for alternative in security:
            for name in alternative:
                scheme = self.schemes.get(name)
                challenge = _challenge(scheme) if scheme is not None else None
                if challenge and challenge not in challenges:
                    challenges.append(challenge)
        return ", ".join(challenges) or f"Bearer {REALM}"


def _challenge(scheme: Any) -> str | None:
    if scheme.type == "http":
        return f"{(scheme.scheme or 'bearer').capitalize()} {REALM}"
    if scheme.type in ("oauth2", "openIdConnect"):
        return f"Bearer {REALM}"
    if scheme.type == "apiKey":
        return f'ApiKey {REALM}, in="{scheme.location}", name="{scheme.parameter_name}"'
    return None
