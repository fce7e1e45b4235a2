"""system: health, version, status, the served document and the docs page."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import create_engine

SPEC_PATH = Path(__file__).resolve().parents[2] / "spec" / "openapi.yaml"


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_health_is_public_and_ok(api: Any) -> None:
    response = api.get("/health", expect=200)
    body = response.json
    assert body["status"] == "ok"
    assert body["time"].endswith("Z")
    assert abs((datetime.now(UTC) - _parse(body["time"])).total_seconds()) < 60
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Request-Id"]


def test_health_degrades_instead_of_failing(
    api: Any, gantry: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    broken = create_engine(f"sqlite:///{tmp_path}/missing-dir/nope/x.db")
    monkeypatch.setattr(gantry.app.extensions["gantry"].database, "engine", broken)
    assert api.get("/health", expect=200).json["status"] == "degraded"


def test_version_reports_the_build(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANTRY_GIT_COMMIT", raising=False)
    monkeypatch.delenv("GANTRY_BUILD_TIME", raising=False)
    body = api.get("/version", expect=200).json
    assert body["version"] == metadata.version("gantry")
    assert body["git_commit"] is None
    assert body["build_time"] is None
    assert body["platform"].startswith("python-3.11")

    monkeypatch.setenv("GANTRY_GIT_COMMIT", "0123abcd")
    monkeypatch.setenv("GANTRY_BUILD_TIME", "2026-11-01T12:00:00Z")
    body = api.get("/version", expect=200).json
    assert body["git_commit"] == "0123abcd"
    assert _parse(body["build_time"]) == datetime(2026, 11, 1, 12, tzinfo=UTC)


def test_version_ignores_a_malformed_build_time(api: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_BUILD_TIME", "yesterday")
    assert api.get("/version", expect=200).json["build_time"] is None


def test_status_needs_a_credential(api: Any) -> None:
    response = api.get("/status", expect=401, code="unauthenticated")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_status_for_a_user(gantry: Any) -> None:
    owner = gantry.user()
    gantry.workspace(owner)
    gantry.workspace(owner)
    gantry.pat(owner)
    body = owner.session.get("/status", expect=200).json
    assert body["status"] == "ok"
    assert body["uptime_seconds"] >= 0
    assert _parse(body["started_at"]) <= datetime.now(UTC)
    assert body["counts"] == {"workspaces": 2, "tokens": 1}
    assert body["features"] == {"registration": True, "openapi": True}


def test_status_for_a_superadmin_counts_users(gantry: Any) -> None:
    gantry.user()
    body = gantry.admin.get("/status", expect=200).json
    assert body["counts"]["users"] == 2  # the bootstrap admin and the new user


def test_status_for_an_api_key(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)
    gantry.member(ws["id"], owner, "viewer")
    key = gantry.api_key(ws["id"], owner)
    body = gantry.bearer(key["key"]).get("/status", expect=200).json
    assert body["counts"] == {"workspaces": 1, "members": 2, "api_keys": 1}


def test_status_reports_feature_flags(make_app: Any, gantry_for: Any) -> None:
    app = make_app(registration_enabled=False, openapi_enabled=False)
    admin = gantry_for(app).admin
    assert admin.get("/status", expect=200).json["features"] == {
        "registration": False,
        "openapi": False,
    }


def test_openapi_document_is_the_spec(api: Any) -> None:
    served = api.get("/openapi.json", expect=200).json
    source = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert served["openapi"] == source["openapi"]
    assert served["info"] == source["info"]
    assert served["paths"].keys() == source["paths"].keys()
    assert served["components"]["schemas"].keys() == source["components"]["schemas"].keys()


def test_docs_page(api: Any) -> None:
    response = api.get("/docs", expect=200)
    assert response.mimetype == "text/html"
    html = response.get_data(as_text=True)
    assert "swagger-ui" in html
    assert 'data-spec-url="/api/v1/openapi.json"' in html
    assert "Content-Security-Policy" in response.headers


def test_document_and_docs_can_be_switched_off(make_app: Any, gantry_for: Any) -> None:
    anon = gantry_for(make_app(openapi_enabled=False)).anon
    anon.get("/openapi.json", expect=404, code="not_found")
    anon.get("/docs", expect=404, code="not_found")
    anon.get("/health", expect=200)
