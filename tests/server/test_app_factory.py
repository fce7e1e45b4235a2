"""The app factory: refuses to start with a missing handler, and says which."""

from __future__ import annotations

from pathlib import Path

import pytest

from server import handlers
from server.app import create_app
from server.config import Config
from server.runtime.dispatch import MissingHandlerError


def test_a_missing_handler_stops_start_up_naming_the_operation(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import server.handlers.system as system
    import server.handlers.tokens as tokens

    monkeypatch.delattr(system, "get_health")
    monkeypatch.delattr(tokens, "revoke_token")
    with pytest.raises(MissingHandlerError) as caught:
        create_app(Config(database_url=f"sqlite:///{tmp_path}/t.db", var_dir=tmp_path))
    message = str(caught.value)
    assert "'getHealth'" in message and "server/handlers/system.py" in message
    assert "'revokeToken'" in message and "server/handlers/tokens.py" in message
    assert handlers  # the package itself is untouched


def test_openapi_and_docs_can_be_switched_off(tmp_path: Path) -> None:
    app = create_app(
        Config(database_url=f"sqlite:///{tmp_path}/t.db", var_dir=tmp_path, openapi_enabled=False)
    )
    client = app.test_client()
    for path in ("/api/v1/openapi.json", "/api/v1/docs", "/api/v1/docs/assets/swagger-ui.css"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.content_type == "application/problem+json"


def test_missing_credentials_are_reported_before_bad_parameters(tmp_path: Path) -> None:
    app = create_app(Config(database_url=f"sqlite:///{tmp_path}/t.db", var_dir=tmp_path))
    response = app.test_client().get("/api/v1/users/lookup")  # no credential, no email
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthenticated"
