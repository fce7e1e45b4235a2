"""system: health, build information, instance status, the OpenAPI document and the docs page."""

from __future__ import annotations

import logging
import os
import platform
import time
from datetime import timedelta
from importlib import metadata
from typing import Any

from sqlalchemy import text

from server.docs import docs_page
from server.handlers._common import as_datetime, now
from server.runtime.context import Reply, Request
from server.runtime.errors import ApiError, NotFound
from server.storage import repositories as repo

SPEC_URL = "/api/v1/openapi.json"
log = logging.getLogger("gantry.system")


def _version() -> str:
    try:
        return metadata.version("gantry")[:64]
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _platform() -> str:
    return (f"python-{platform.python_version()}-{platform.system().lower()}-{platform.machine()}")[
        :100
    ]


def _database_ok(req: Request) -> bool:
    """A trivial query on a connection of its own, so a broken database never fails the
    request's transaction (health answers ``degraded``, not 500)."""
    try:
        with req.state.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("database health check failed", exc_info=True)
        return False


def get_health(req: Request) -> dict[str, Any]:
    """``{status: ok|degraded, time}``."""
    return {"status": "ok" if _database_ok(req) else "degraded", "time": now()}


def get_version(req: Request) -> dict[str, Any]:
    """The release version, the commit and build time when known, and the platform."""
    commit = os.environ.get("GANTRY_GIT_COMMIT", "").strip() or None
    built = os.environ.get("GANTRY_BUILD_TIME", "").strip()
    try:
        build_time = as_datetime(built) if built else None
    except (ValueError, ApiError):
        build_time = None
    return {
        "version": _version(),
        "git_commit": commit[:64] if commit else None,
        "build_time": build_time,
        "platform": _platform(),
    }


def _counts(req: Request) -> dict[str, int]:
    principal = req.principal
    assert principal is not None
    db = req.db
    if principal.kind == "api_key":
        assert principal.workspace_id is not None
        return {
            "workspaces": 1,
            "members": repo.count_members(db, principal.workspace_id),
            "api_keys": repo.count_api_keys(db, principal.workspace_id, status="active"),
        }
    user_id = req.user_id
    counts = {
        "workspaces": repo.count_workspaces_for_user(db, user_id),
        "tokens": repo.count_pats(db, user_id, status="active"),
    }
    if principal.is_superadmin:
        counts["users"] = repo.count_users(db)
    return counts


def get_status(req: Request) -> dict[str, Any]:
    """Uptime, resource counts visible to the caller, and feature flags."""
    uptime = max(0.0, time.monotonic() - req.state.started_at)
    config = req.state.config
    return {
        "status": "ok" if _database_ok(req) else "degraded",
        "version": _version(),
        "started_at": now() - timedelta(seconds=uptime),
        "uptime_seconds": int(uptime),
        "counts": _counts(req),
        "features": {
            "registration": bool(config.registration_enabled),
            "openapi": bool(config.openapi_enabled),
        },
    }


def _require_docs(req: Request) -> None:
    if not req.state.config.openapi_enabled:
        raise NotFound("The API documentation is disabled.")


def get_openapi_document(req: Request) -> dict[str, Any]:
    """The spec the server was generated from; 404 when disabled."""
    _require_docs(req)
    return req.state.spec_document


def get_docs(req: Request) -> Reply:
    """The interactive docs page; 404 when disabled."""
    _require_docs(req)
    info = req.state.spec_document.get("info") or {}
    title = f"{info.get('title') or 'Gantry API'} docs"
    return Reply(docs_page(title, SPEC_URL), media_type="text/html")
