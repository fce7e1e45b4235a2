"""run_outputs: a run's log lines and artifacts (uploaded, listed, streamed, deleted)."""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from flask import Response
from werkzeug.http import parse_range_header

from server.domain import run_outputs
from server.handlers._common import API_BASE
from server.runtime.context import Reply, Request
from server.runtime.errors import ClientError


class RangeNotSatisfiable(ClientError):
    """The requested byte range lies outside the file."""

    status: ClassVar[int] = 416
    title: ClassVar[str] = "Range Not Satisfiable"
    code: ClassVar[str] = "range_not_satisfiable"


def list_run_logs(req: Request) -> dict[str, Any]:
    """The run's log lines after ``after_seq``, oldest first."""
    assert req.page is not None
    lines, total = run_outputs.list_logs(
        req.work,
        req.path["workspace_id"],
        req.path["run_id"],
        after_seq=req.query.get("after_seq"),
        channel=req.query.get("channel"),
        window=req.page,
    )
    return req.page.respond(lines, key=run_outputs.log_position, total=total)


def list_run_artifacts(req: Request) -> dict[str, Any]:
    """The run's artifacts (metadata)."""
    assert req.page is not None
    found, total = run_outputs.list_artifacts(
        req.work,
        req.path["workspace_id"],
        req.path["run_id"],
        kind=req.query.get("kind"),
        window=req.page,
    )
    return req.page.respond(found, total=total)


def upload_run_artifact(req: Request) -> Reply:
    """Store the uploaded file as an artifact of the run."""
    body = req.body
    artifact = run_outputs.upload_artifact(
        req.work,
        run_outputs.artifact_files(req.state.config.artifact_dir()),
        req.path["workspace_id"],
        req.path["run_id"],
        body["file"],
        kind=body.get("kind"),
        name=body.get("name"),
    )
    return Reply(
        artifact,
        status=201,
        headers={"Location": f"{API_BASE}/artifacts/{artifact.id}/content"},
    )


def delete_artifact(req: Request) -> None:
    """Remove an artifact and its bytes."""
    run_outputs.delete_artifact(
        req.work,
        run_outputs.artifact_files(req.state.config.artifact_dir()),
        req.path["workspace_id"],
        req.path["artifact_id"],
    )


def get_artifact_content(req: Request) -> Response:
    """Stream the artifact's bytes, or the one byte range asked for."""
    found = run_outputs.download(
        req.work,
        run_outputs.artifact_files(req.state.config.artifact_dir()),
        req.path["workspace_id"],
        req.path["artifact_id"],
    )
    artifact = found.artifact
    size = artifact.size_bytes
    headers = {
        "Content-Disposition": _attachment(artifact.name),
        "Accept-Ranges": "bytes",
        "ETag": f'"{artifact.sha256}"',
    }
    wanted = parse_range_header(req.headers.get("Range"))
    span = wanted.range_for_length(size) if wanted is not None and len(wanted.ranges) == 1 else None
    if wanted is not None and len(wanted.ranges) == 1 and span is None:
        raise RangeNotSatisfiable(
            f"The range lies outside the file's {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    if span is None:
        body, status = found.chunks(), 200
        headers["Content-Length"] = str(size)
    else:
        start, stop = span
        body, status = found.chunks(start, stop - start), 206
        headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
        headers["Content-Length"] = str(stop - start)
    return Response(
        body,
        status=status,
        headers=headers,
        content_type=artifact.content_type,
        direct_passthrough=True,
    )


def _attachment(name: str) -> str:
    """``attachment`` naming the file, in ASCII and (RFC 6266) in UTF-8."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"
