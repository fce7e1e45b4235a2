"""The key that seals provider secrets at rest, found (or made) once, at start-up.

With ``GANTRY_SECRET_KEY`` set the key is derived from it; otherwise it is the key file
(``Config.key_file``), written with mode 0600 on the first start that finds no stored secret.
A key that does not open what is stored, or a key file gone while secrets are stored, stops
start-up with a message saying what to restore: never a 500 on the first gateway call.
"""

from __future__ import annotations

import os
from pathlib import Path

from server.config import Config
from server.domain.secrets import SecretBox, SecretsUnreadable
from server.storage import gateway as gateway_rows
from server.storage.db import Database


class SecretKeyError(RuntimeError):
    """The configured key cannot open the provider secrets the database holds."""


def open_secret_box(config: Config, database: Database) -> SecretBox:
    """The instance's ``SecretBox``, checked against one stored secret."""
    with database.session() as db:
        stored = gateway_rows.any_ciphertext(db)
    if config.secrets_passphrase:
        box = SecretBox.from_passphrase(config.secrets_passphrase)
        source = "GANTRY_SECRET_KEY"
    else:
        path = config.key_file()
        box = SecretBox(_read_or_create(path, may_create=stored is None))
        source = f"the key file {path}"
    if stored is not None:
        try:
            box.open(stored)
        except SecretsUnreadable:
            raise SecretKeyError(
                f"The provider secrets in the database were sealed with another key than "
                f"{source}. Restore the key they were sealed with (GANTRY_SECRET_KEY, or the "
                f"key file), or delete and re-create the providers."
            ) from None
    return box


def _read_or_create(path: Path, *, may_create: bool) -> bytes:
    """The key in ``path``; written there first (0600, never overwritten) when there is none
    and nothing is sealed yet."""
    try:
        return _read(path)
    except FileNotFoundError:
        if not may_create:
            raise SecretKeyError(
                f"Provider secrets are stored, but the key file {path} that opens them is "
                "missing. Restore it (or set GANTRY_SECRET_KEY to the secret they were sealed "
                "with)."
            ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = SecretBox.new_key()
    # Written whole under a temporary name, then linked into place: a worker starting at the
    # same moment reads either no file or the complete one, and the first link wins.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(key + b"\n")
        os.link(draft, path)
    except FileExistsError:  # another worker's key won
        return _read(path)
    finally:
        draft.unlink(missing_ok=True)
    return key


def _read(path: Path) -> bytes:
    key = path.read_bytes().strip()
    try:
        SecretBox(key)
    except ValueError:
        raise SecretKeyError(f"The key file {path} does not hold a valid key.") from None
    return key
