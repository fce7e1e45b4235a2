"""A small on-disk cache keyed by content hashes, for the slow steps (validation, models).

Entries live under `$GANTRY_CACHE_DIR`, else `.cache/gantry/` in the current directory. A cache
that cannot be read or written is simply not used: it only ever saves time.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

# Bump when the meaning of a cached value changes, so old entries are never read.
CACHE_FORMAT = "1"


def key(*parts: str) -> str:
    """A cache key from the things a value depends on."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    for part in parts:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


class Cache:
    """Text values stored as files named by their key, one folder per kind."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    @classmethod
    def from_environment(cls) -> Cache:
        """The cache under `$GANTRY_CACHE_DIR` or `.cache/gantry`; disabled when set to empty."""
        configured = os.environ.get("GANTRY_CACHE_DIR")
        if configured == "":
            return cls(None)
        return cls(Path(configured) if configured else Path(".cache", "gantry"))

    def get(self, kind: str, name: str) -> str | None:
        """The stored value, or None."""
        if self.root is None:
            return None
        try:
            return (self.root / kind / name).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return None

    def put(self, kind: str, name: str, value: str) -> None:
        """Store a value atomically (readers never see half a file); failures are ignored."""
        if self.root is None:
            return
        folder = self.root / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(value)
            os.replace(temporary, folder / name)
        except OSError:
            return
