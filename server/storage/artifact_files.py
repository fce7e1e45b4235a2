"""Artifact bytes, outside the database: one file per artifact under a directory.

A file is written to a temporary name in the directory, synced, then renamed into place, so a
reader never sees half an upload and a crash leaves only a temporary file behind. Files are
spread over two levels of subdirectories by the first characters of a random name; the
artifact row keeps that relative name (``storage_key``) and the bytes' SHA-256.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

__all__ = ["ArtifactFiles", "StoredFile"]

_CHUNK = 64 * 1024
# How many leading bytes are kept for sniffing the content type.
HEAD_BYTES = 512


@dataclass(frozen=True, slots=True)
class StoredFile:
    """A file just stored: its key, size, digest and first bytes."""

    key: str
    size: int
    sha256: str
    head: bytes


class ArtifactFiles:
    """The files under ``root`` (created on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def save(self, source: BinaryIO) -> StoredFile:
        """Copy ``source`` to a new file; returns what was stored."""
        name = secrets.token_hex(16)
        key = f"{name[:2]}/{name[2:4]}/{name}"
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.partial")
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            with partial.open("wb") as out:
                while chunk := source.read(_CHUNK):
                    if len(head) < HEAD_BYTES:
                        head += chunk[: HEAD_BYTES - len(head)]
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.replace(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return StoredFile(key, size, digest.hexdigest(), head)

    def path(self, key: str) -> Path:
        """Where the file ``key`` is (a key never leaves the root)."""
        resolved = (self.root / key).resolve()
        if self.root.resolve() not in resolved.parents:
            raise ValueError(f"not an artifact key: {key!r}")
        return resolved

    def read(self, key: str, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The file's bytes from ``start``, ``length`` of them (all by default), in chunks."""
        with self.path(key).open("rb") as source:
            source.seek(start)
            remaining = length
            while remaining is None or remaining > 0:
                want = _CHUNK if remaining is None else min(_CHUNK, remaining)
                chunk = source.read(want)
                if not chunk:
                    return
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, key: str) -> None:
        """Remove the file ``key`` (gone already: nothing to do)."""
        self.path(key).unlink(missing_ok=True)
