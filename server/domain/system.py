"""The instance itself: whether it is healthy, which build it runs, and its status as one
caller may see it."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata

from server.config import Config
from server.domain.actors import Principal
from server.domain.errors import Invalid
from server.domain.unit import UnitOfWork
from server.domain.values import as_datetime
from server.storage import rows
from server.storage import users as user_rows
from server.storage import workspaces as workspace_rows
from server.storage.db import Database
from server.storage.models import ApiKey, PersonalAccessToken

# The builder's stamps, when the build was made by a pipeline that knows them.
GIT_COMMIT_ENV = "GANTRY_GIT_COMMIT"
BUILD_TIME_ENV = "GANTRY_BUILD_TIME"


@dataclass(frozen=True, slots=True)
class Health:
    """``ok``, or ``degraded`` when the database does not answer; and the instance's time."""

    status: str
    time: datetime


@dataclass(frozen=True, slots=True)
class Build:
    """The release, the commit and build time when known, and the runtime platform."""

    version: str
    git_commit: str | None
    build_time: datetime | None
    platform: str


@dataclass(frozen=True, slots=True)
class InstanceStatus:
    """Health, build and uptime, with the counts the caller may see and the feature flags."""

    status: str
    version: str
    started_at: datetime
    uptime_seconds: int
    counts: dict[str, int]
    features: dict[str, bool]


def health(uow: UnitOfWork, database: Database) -> Health:
    """Whether the database answers, at the unit's time."""
    return Health("ok" if database.reachable() else "degraded", uow.now)


def build(environ: Mapping[str, str] = os.environ) -> Build:
    """This build: the installed release, and the builder's stamps (a malformed time is
    unknown, not an error)."""
    commit = environ.get(GIT_COMMIT_ENV, "").strip() or None
    built = environ.get(BUILD_TIME_ENV, "").strip()
    try:
        build_time = as_datetime(built, BUILD_TIME_ENV) if built else None
    except Invalid:
        build_time = None
    return Build(
        version=_version(),
        git_commit=commit[:64] if commit else None,
        build_time=build_time,
        platform=_platform(),
    )


def _version() -> str:
    try:
        return metadata.version("gantry")[:64]
    except metadata.PackageNotFoundError:
        return "0.0.0"


def _platform() -> str:
    runtime = f"python-{platform.python_version()}-{platform.system().lower()}"
    return f"{runtime}-{platform.machine()}"[:100]


def instance_status(
    uow: UnitOfWork, database: Database, *, caller: Principal, config: Config, started: float
) -> InstanceStatus:
    """The instance's status for ``caller``, up since the monotonic time ``started``."""
    uptime = max(0.0, time.monotonic() - started)
    return InstanceStatus(
        status=health(uow, database).status,
        version=_version(),
        started_at=uow.now - timedelta(seconds=uptime),
        uptime_seconds=int(uptime),
        counts=_counts(uow, caller),
        features={
            "registration": bool(config.registration_enabled),
            "openapi": bool(config.openapi_enabled),
        },
    )


def _counts(uow: UnitOfWork, caller: Principal) -> dict[str, int]:
    """What the caller may count: an API key its workspace's members and active keys; a
    user their workspaces and active tokens, and a superadmin the instance's users."""
    db = uow.db
    if caller.kind == "api_key":
        assert caller.workspace_id is not None
        return {
            "workspaces": 1,
            "members": workspace_rows.count_members(db, caller.workspace_id),
            "api_keys": rows.count_by(
                db, ApiKey, workspace_id=caller.workspace_id, status="active"
            ),
        }
    assert caller.user_id is not None
    counts = {
        "workspaces": workspace_rows.count_workspaces_for_user(db, caller.user_id),
        "tokens": rows.count_by(db, PersonalAccessToken, user_id=caller.user_id, status="active"),
    }
    if caller.is_superadmin:
        counts["users"] = user_rows.count_users(db)
    return counts
