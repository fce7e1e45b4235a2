"""The bootstrap token: on an empty database a superadmin owning it, on any other nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from server.bootstrap import BootstrapError, bootstrap
from server.storage import users as user_rows
from server.storage.models import AuditEvent, PersonalAccessToken

OTHER_TOKEN = "pat_" + "B" * 40


def test_a_fresh_instance_gets_a_superadmin_owning_the_token(gantry: Any) -> None:
    me = gantry.admin.get("/auth/me", expect=200).json
    assert me["user"]["email"] == "admin@gantry.local"
    assert me["user"]["is_superadmin"] is True
    assert me["credential"]["scopes"] == ["admin", "gateway", "read", "run", "write"]
    with gantry.db() as db:
        token = db.scalars(select(PersonalAccessToken)).one()
        lifetime = token.expires_at - datetime.now(UTC)
        assert timedelta(days=364) < lifetime <= timedelta(days=365)
        created = db.scalars(select(AuditEvent).where(AuditEvent.action == "user.created")).one()
        assert (created.actor_type, created.actor_id, created.actor_label) == (
            "system",
            None,
            "bootstrap",
        )
        assert created.target_id == me["user"]["id"]
        assert created.summary == "Bootstrap superadmin admin@gantry.local created"
        assert created.metadata_ == {"source": "GANTRY_BOOTSTRAP_TOKEN"}


def test_an_instance_with_users_is_left_alone(gantry: Any, make_app: Any, gantry_for: Any) -> None:
    gantry.user()
    before = gantry.counts()
    again = gantry_for(make_app(bootstrap_token=OTHER_TOKEN))  # the same database
    assert again.counts() == before
    again.bearer(OTHER_TOKEN).get("/auth/me", expect=401)


def test_a_worker_that_lost_the_race_starts_quietly(
    app: Any, gantry: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another worker created the bootstrap admin after this one found the database empty.
    monkeypatch.setattr(user_rows, "count_users", lambda *_args, **_kwargs: 0)
    before = gantry.counts()
    bootstrap(app.extensions["gantry"])
    assert gantry.counts() == before


def test_a_malformed_token_stops_start_up(make_app: Any) -> None:
    with pytest.raises(BootstrapError):
        make_app(bootstrap_token="pat_too-short")
