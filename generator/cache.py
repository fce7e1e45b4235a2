"""A small on-disk cache keyed by content hashes, for the slow steps (validation, models, output).

Entries live under `$GANTRY_CACHE_DIR`, else `.cache/gantry/` in the current directory; setting
`GANTRY_CACHE_DIR` to the empty string turns the cache off. A cache that cannot be read or written
is simply not used: it only ever saves time. Each kind keeps its most recent entries only,
within a count and a size.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sysconfig
import tempfile
from pathlib import Path

# Bump when the meaning of a cached value changes, so old entries are never read.
CACHE_FORMAT = "1"
KEEP_PER_KIND = 32
# ...and no more bytes than this per kind, the newest entry aside: one entry for a spec of thousands
# of operations is 10 MB or more, and a cache only ever saves time.
KEEP_BYTES_PER_KIND = 64 * 2**20
PACKAGE = Path(__file__).resolve().parent


def key(*parts: str) -> str:
    """A cache key from the things a value depends on."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    for part in parts:
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()


def module_digest(module_file: str) -> str:
    """The sha256 of a module's source: a cached value depends on the code that made it."""
    return hashlib.sha256(Path(module_file).read_bytes()).hexdigest()


@functools.cache
def code_digest() -> str:
    """The sha256 of the generator's own code and templates."""
    digest = hashlib.sha256()
    for path in sorted(
        [*PACKAGE.glob("*.py"), *PACKAGE.glob("templates/*.jinja"), *PACKAGE.glob("oas/*.json")]
    ):
        digest.update(path.relative_to(PACKAGE).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def installed_digest() -> str:
    """A digest of the installed distributions and their versions (datamodel-code-generator,
    ruff, openapi-spec-validator…): another version may produce other bytes.

    Reads the `*.dist-info` names of site-packages, which is much cheaper than importing
    `importlib.metadata`.
    """
    names: list[str] = []
    for folder in sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}):
        try:
            names += [name for name in os.listdir(folder) if name.endswith(".dist-info")]
        except OSError:
            continue
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()


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

    def folder(self, kind: str) -> Path | None:
        """A folder of the cache for a tool that manages its own files, or None."""
        return self.root / kind if self.root is not None else None

    def get(self, kind: str, name: str) -> str | None:
        """The stored value, or None."""
        value = self.get_bytes(kind, name)
        try:
            return value.decode("utf-8") if value is not None else None
        except UnicodeDecodeError:
            return None

    def get_bytes(self, kind: str, name: str) -> bytes | None:
        """The stored bytes, or None."""
        if self.root is None:
            return None
        try:
            return (self.root / kind / name).read_bytes()
        except OSError:
            return None

    def put(self, kind: str, name: str, value: str) -> None:
        """Store a value atomically (readers never see half a file); failures are ignored."""
        self.put_bytes(kind, name, value.encode("utf-8"))

    def put_bytes(self, kind: str, name: str, value: bytes) -> None:
        """Store bytes atomically (readers never see half a file); failures are ignored."""
        if self.root is None:
            return
        folder = self.root / kind
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(value)
                os.replace(temporary, folder / name)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
            self._prune(folder)
        except OSError:
            return

    def newest(self, kind: str, *, prefix: str = "") -> str | None:
        """The name of the most recently stored value of a kind (starting with `prefix`)."""
        if self.root is None:
            return None
        try:
            entries = [
                (entry.stat().st_mtime, entry.name)
                for entry in os.scandir(self.root / kind)
                if entry.is_file() and entry.name.startswith(prefix)
            ]
        except OSError:
            return None
        return max(entries)[1] if entries else None

    @staticmethod
    def _prune(folder: Path) -> None:
        """Keep the newest entries of a kind: at most ``KEEP_PER_KIND`` of them, in at most
        ``KEEP_BYTES_PER_KIND`` bytes (the newest one whatever its size)."""
        entries = sorted(
            ((stat.st_mtime, stat.st_size, entry.name) for entry, stat in _files(folder)),
            reverse=True,
        )
        kept = total = 0
        for _, size, name in entries:
            total += size
            if kept == 0 or (kept < KEEP_PER_KIND and total <= KEEP_BYTES_PER_KIND):
                kept += 1
            else:
                (folder / name).unlink(missing_ok=True)


def _files(folder: Path) -> list[tuple[os.DirEntry[str], os.stat_result]]:
    """The entries of a cache folder with their stats (files being written start with a dot)."""
    return [
        (entry, entry.stat())
        for entry in os.scandir(folder)
        if entry.is_file() and not entry.name.startswith(".")
    ]
