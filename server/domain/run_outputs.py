"""What runs leave behind: log lines and artifacts.

Artifact bytes go to the file store (``server.storage.artifact_files``) before the row is
written, and a failed write removes them again; a deleted artifact's file is removed once the
delete has committed, so a rolled-back delete loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO, Protocol

from server.domain import run_states
from server.domain.errors import NotFound
from server.domain.events import publish
from server.domain.listing import Window
from server.domain.sniff import sniff
from server.domain.unit import UnitOfWork
from server.security import new_id
from server.storage import rows
from server.storage import runs as run_rows
from server.storage.artifact_files import ArtifactFiles
from server.storage.commit_hooks import after_commit
from server.storage.run_models import Artifact, Run, RunLog

__all__ = [
    "Download",
    "Upload",
    "artifact_files",
    "delete_artifact",
    "download",
    "list_artifacts",
    "list_logs",
    "log_position",
    "upload_artifact",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def artifact_files(directory: Path) -> ArtifactFiles:
    """The artifact store under ``directory``."""
    return ArtifactFiles(directory)


def _run(uow: UnitOfWork, workspace_id: str, run_id: str) -> Run:
    run = rows.get(uow.db, Run, run_id, workspace_id=workspace_id)
    if run is None:
        raise NotFound("Run not found.")
    return run


# ── logs ────────────────────────────────────────────────────────────────────────────────────


def log_position(line: RunLog) -> tuple[datetime, str]:
    """A log line's place in its run's log, as a list cursor keeps it."""
    return _EPOCH + timedelta(microseconds=line.seq), "seq"


def list_logs(
    uow: UnitOfWork,
    workspace_id: str,
    run_id: str,
    *,
    after_seq: int | None,
    channel: str | None,
    window: Window,
) -> tuple[Sequence[RunLog], int | None]:
    """Up to a page (plus one) of the run's log lines after ``after_seq`` (and after the
    cursor's line), oldest first; and, if asked, how many lines follow ``after_seq``."""
    run = _run(uow, workspace_id, run_id)
    after = after_seq or 0
    page_after = after
    if window.after is not None:
        page_after = max(after, (window.after[0] - _EPOCH) // timedelta(microseconds=1))
    lines = run_rows.logs_after(
        uow.db, run.id, after_seq=page_after, channel=channel, limit=window.limit
    )
    if not window.include_total:
        return lines, None
    return lines, run_rows.count_logs_after(uow.db, run.id, after_seq=after, channel=channel)


# ── artifacts ───────────────────────────────────────────────────────────────────────────────


def list_artifacts(
    uow: UnitOfWork, workspace_id: str, run_id: str, *, kind: str | None, window: Window
) -> tuple[Sequence[Artifact], int | None]:
    """The run's artifacts in ``window``, and their count if asked."""
    run = _run(uow, workspace_id, run_id)
    found = rows.list_by(
        uow.db,
        Artifact,
        after=window.after,
        order=window.direction,
        limit=window.limit,
        run_id=run.id,
        kind=kind,
    )
    total = (
        rows.count_by(uow.db, Artifact, run_id=run.id, kind=kind) if window.include_total else None
    )
    return found, total


class Upload(Protocol):
    """An uploaded file part: its bytes, and what the sender said of it."""

    @property
    def stream(self) -> BinaryIO: ...

    @property
    def filename(self) -> str | None: ...

    @property
    def content_type(self) -> str | None: ...


def upload_artifact(
    uow: UnitOfWork,
    files: ArtifactFiles,
    workspace_id: str,
    run_id: str,
    upload: Upload,
    *,
    kind: str | None,
    name: str | None,
) -> Artifact:
    """Store the bytes as an artifact of a run that has not ended."""
    run = _run(uow, workspace_id, run_id)
    if run.status in run_states.TERMINAL:
        raise run_states.refuse(
            run.status, f"The run has ended ({run.status}); it takes no artifacts."
        )
    stored = files.save(upload.stream)
    try:
        artifact = rows.add(
            uow.db,
            Artifact(
                id=new_id("art_"),
                workspace_id=run.workspace_id,
                run_id=run.id,
                name=name or _file_name(upload.filename) or "artifact",
                kind=kind or "file",
                content_type=sniff(stored.head, upload.content_type or ""),
                size_bytes=stored.size,
                sha256=stored.sha256,
                storage_key=stored.key,
                created_by=uow.actor.actor_id,
                created_at=uow.now,
            ),
        )
    except BaseException:
        files.delete(stored.key)
        raise
    publish(
        uow,
        "run.artifact_added",
        run.workspace_id,
        {
            "run_id": run.id,
            "artifact_id": artifact.id,
            "name": artifact.name,
            "kind": artifact.kind,
        },
    )
    return artifact


def _file_name(filename: str | None) -> str | None:
    """The last path segment of a part's file name, without control characters."""
    if not filename:
        return None
    base = filename.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(ch for ch in base if ch >= " " and ch != "\x7f")[:255]
    return cleaned or None


@dataclass(frozen=True, slots=True)
class Download:
    """An artifact's metadata and a way to read its bytes."""

    artifact: Artifact
    files: ArtifactFiles

    def chunks(self, start: int = 0, length: int | None = None) -> Iterator[bytes]:
        """The bytes from ``start``, ``length`` of them (all by default)."""
        return self.files.read(self.artifact.storage_key, start, length)


def download(
    uow: UnitOfWork, files: ArtifactFiles, workspace_id: str, artifact_id: str
) -> Download:
    """The artifact, ready to stream."""
    artifact = rows.get(uow.db, Artifact, artifact_id, workspace_id=workspace_id)
    if artifact is None:
        raise NotFound("Artifact not found.")
    return Download(artifact, files)


def delete_artifact(
    uow: UnitOfWork, files: ArtifactFiles, workspace_id: str, artifact_id: str
) -> None:
    """Remove the artifact; its file goes once the removal has committed."""
    artifact = rows.get(uow.db, Artifact, artifact_id, workspace_id=workspace_id)
    if artifact is None:
        raise NotFound("Artifact not found.")
    key = artifact.storage_key
    run_rows.delete_artifact(uow.db, artifact)
    after_commit(uow.db, lambda: files.delete(key))
