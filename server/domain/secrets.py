"""Secrets at rest: provider API keys and extra headers, sealed with one key of the instance.

A ``SecretBox`` seals a string (or a header mapping, as JSON) into a Fernet token (AES-128-CBC
with an HMAC-SHA256, so a token sealed under another key, or altered, never opens to garbage:
it fails). The key comes from configuration (``server.secret_key``); nothing here logs or
returns a plaintext except to the caller that opens it.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Binds keys derived from an operator's secret to this one use (the same secret signs cursors).
_PURPOSE = b"gantry provider secrets v1"


class SecretsUnreadable(RuntimeError):
    """A stored secret does not open with this box's key (another key, or altered)."""


class SecretBox:
    """Seals and opens secrets with one Fernet key."""

    __slots__ = ("_fernet",)

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @staticmethod
    def new_key() -> bytes:
        """A fresh random key, as a key file holds it."""
        return Fernet.generate_key()

    @classmethod
    def from_passphrase(cls, secret: str) -> SecretBox:
        """The box of a key derived from an operator's secret (``GANTRY_SECRET_KEY``)."""
        derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
            secret.encode("utf-8")
        )
        return cls(base64.urlsafe_b64encode(derived))

    def seal(self, plaintext: str) -> str:
        """``plaintext`` encrypted and authenticated, as ASCII text for a column."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, token: str) -> str:
        """The plaintext of ``token``; ``SecretsUnreadable`` if this key did not seal it."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError):
            raise SecretsUnreadable("a stored secret does not open with this key") from None

    def seal_headers(self, headers: Mapping[str, str]) -> str:
        """A header mapping sealed as one token."""
        return self.seal(json.dumps(dict(headers), separators=(",", ":"), sort_keys=True))

    def open_headers(self, token: str) -> dict[str, str]:
        """The header mapping of ``token``."""
        value = json.loads(self.open(token))
        if not isinstance(value, dict):
            raise SecretsUnreadable("stored headers are not a mapping")
        return {str(name): str(text) for name, text in value.items()}
