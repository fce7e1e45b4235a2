"""``GANTRY_BOOTSTRAP_TOKEN``: on an empty database, create a superadmin who owns that token.

This lets scripts and CI drive a fresh server without a registration step. The token must be a
well-formed personal access token (``pat_`` + 40 base62 characters); it gets every scope and
lives for a year. On a database that already has users nothing happens.
"""

from __future__ import annotations

import logging
import re

from server.domain import users
from server.domain.errors import Conflict
from server.domain.unit import SystemActor, unit_of_work
from server.state import AppState

_TOKEN = re.compile(r"pat_[0-9A-Za-z]{40}")
# The system, named for what it does here in the audit trail.
BOOTSTRAP = SystemActor(label="bootstrap")
log = logging.getLogger("gantry.bootstrap")


class BootstrapError(ValueError):
    """The bootstrap token is malformed."""


def bootstrap(state: AppState) -> None:
    """Create the bootstrap superadmin and token if configured and the database is empty."""
    token = state.config.bootstrap_token
    if not token:
        return
    if not _TOKEN.fullmatch(token):
        raise BootstrapError(
            "GANTRY_BOOTSTRAP_TOKEN must be 'pat_' followed by 40 letters or digits."
        )
    try:
        with unit_of_work(state.database.sessionmaker, BOOTSTRAP) as uow:
            admin = users.bootstrap_superadmin(uow, token)
    except Conflict:  # another worker bootstrapped the same empty database first
        return
    if admin is not None:
        log.info("created bootstrap superadmin %s", users.BOOTSTRAP_EMAIL)
