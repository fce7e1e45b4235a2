"""Secrets: identifiers, bearer-token values, their hashes, and password hashing.

One job only. Nothing here touches the database or the request.

* ``new_id("ws_")`` gives ``ws_`` + 24 base62 characters (``^ws_[0-9A-Za-z]{24}$``).
* ``mint_secret("pat_")`` gives ``pat_`` + 40 base62 characters; the plain value is shown
  to the user once and only ``hash_secret(value)`` (SHA-256 hex) is stored.
  ``secret_prefix(value)`` (the first 8 characters, e.g. ``pat_AbCd``) is stored for display.
* Passwords use argon2id through argon2-cffi. Production uses the library defaults
  (RFC 9106 low-memory profile: t=3, m=64 MiB, p=4). Setting the environment variable
  ``GANTRY_ARGON2_PROFILE=fast`` lowers the cost (t=1, m=1 MiB, p=1) so test suites that
  create many users stay quick; never set it in production. Hashes made under either profile
  verify under both (the parameters travel inside the hash); ``needs_rehash`` reports hashes
  whose parameters differ from the active profile.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "ARGON2_PROFILE_ENV",
    "BASE62_ALPHABET",
    "ID_RANDOM_LENGTH",
    "SECRET_RANDOM_LENGTH",
    "hash_password",
    "hash_secret",
    "mint_secret",
    "needs_rehash",
    "new_id",
    "secret_prefix",
    "secrets_equal",
    "verify_password",
]

BASE62_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
ID_RANDOM_LENGTH = 24
SECRET_RANDOM_LENGTH = 40
SECRET_PREFIX_LENGTH = 8
ARGON2_PROFILE_ENV = "GANTRY_ARGON2_PROFILE"

_PREFIX_RE = re.compile(r"^[a-z]{1,8}_?$")

_HASHERS: dict[str, PasswordHasher] = {
    # argon2-cffi defaults: argon2id, RFC 9106 "low memory" profile.
    "default": PasswordHasher(),
    # Cheap parameters for test suites (GANTRY_ARGON2_PROFILE=fast). Still argon2id.
    "fast": PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1),
}
_DUMMY_HASHES: dict[str, str] = {}


def _check_prefix(prefix: str) -> str:
    """``"ws"`` or ``"ws_"`` -> ``"ws_"``; anything else is a programming error."""
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix must be 1-8 lower-case letters (+ '_'), got {prefix!r}")
    return prefix if prefix.endswith("_") else prefix + "_"


def _random_base62(length: int) -> str:
    return "".join(secrets.choice(BASE62_ALPHABET) for _ in range(length))


def new_id(prefix: str) -> str:
    """A fresh resource id: ``prefix`` (``"ws_"``; ``"ws"`` gets the ``_`` added) + 24 random
    base62 characters."""
    return _check_prefix(prefix) + _random_base62(ID_RANDOM_LENGTH)


def mint_secret(prefix: str, length: int = SECRET_RANDOM_LENGTH) -> str:
    """A fresh bearer secret: ``prefix`` (``"pat_"``, ``"sk_"``; the ``_`` is added if missing)
    + ``length`` random base62 characters."""
    if length < 16:
        raise ValueError("a secret needs at least 16 random characters")
    return _check_prefix(prefix) + _random_base62(length)


def hash_secret(value: str) -> str:
    """SHA-256 hex digest of a secret (the value stored and looked up; 64 characters)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def secret_prefix(value: str) -> str:
    """The displayable start of a secret: its first 8 characters (``pat_AbCd``, ``sk_AbCde``)."""
    return value[:SECRET_PREFIX_LENGTH]


def secrets_equal(a: str, b: str) -> bool:
    """Constant-time string comparison (for comparing hashes or secrets held in memory)."""
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _profile() -> str:
    return "fast" if os.environ.get(ARGON2_PROFILE_ENV, "").strip().lower() == "fast" else "default"


def _hasher() -> PasswordHasher:
    return _HASHERS[_profile()]


def hash_password(password: str) -> str:
    """An argon2id hash (PHC string, ~100 characters) of ``password``."""
    return _hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``password_hash``; never raises for a bad or missing hash.

    With ``password_hash=None`` (unknown user, or a user without a password) a dummy hash is
    verified anyway, so the answer takes about as long as for a real user.
    """
    hasher = _hasher()
    if password_hash is None:
        profile = _profile()
        dummy = _DUMMY_HASHES.get(profile)
        if dummy is None:
            dummy = _DUMMY_HASHES[profile] = hasher.hash(secrets.token_urlsafe(16))
        with contextlib.suppress(VerificationError, InvalidHashError):
            hasher.verify(dummy, password)
        return False
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True if the hash was made with parameters other than the active profile's."""
    try:
        return _hasher().check_needs_rehash(password_hash)
    except (InvalidHashError, ValueError):
        return True
