"""providers: secrets write-only and sealed at rest, unique names, shapes per type, rotation,
no deletion while a backend uses one, the probe, and who may do what."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from server.domain.secrets import SecretBox
from server.secrets_key import SecretKeyError
from server.serving.redact import redact
from server.storage.gateway_models import Provider
from tests.server.gateway_setup import backend, fake_upstream, name, provider

SECRET = "sk-proj-" + "Q" * 40
HEADER_SECRET = "hdr-" + "Z" * 30


def _stored(gantry: Any, provider_id: str) -> Provider:
    with gantry.db() as db:
        row = db.scalars(select(Provider).where(Provider.id == provider_id)).one()
        db.expunge(row)
        return row


def _box(gantry: Any) -> SecretBox:
    box: SecretBox = gantry.app.extensions["gantry"].secret_box
    return box


def test_create_shows_secrets_only_as_flags_and_seals_them(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    response = gantry.admin.post(
        f"/workspaces/{ws}/providers",
        json={
            "name": "openai-main",
            "type": "openai",
            "api_key": SECRET,
            "extra_headers": {"OpenAI-Organization": HEADER_SECRET},
            "models": ["gpt-4o", "gpt-4o-mini"],
        },
        expect=201,
    )
    made = response.json
    assert response.headers["Location"] == f"/api/v1/providers/{made['id']}"
    assert made["id"].startswith("prv_") and made["workspace_id"] == ws
    assert made["has_api_key"] is True and made["has_headers"] is True
    assert made["base_url"] is None and made["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert "api_key" not in made and "extra_headers" not in made
    for answer in (
        response,
        gantry.admin.get(f"/providers/{made['id']}", expect=200),
        gantry.admin.get(f"/workspaces/{ws}/providers", expect=200),
        gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200),
    ):
        text = answer.get_data(as_text=True)
        assert SECRET not in text and HEADER_SECRET not in text
    stored = _stored(gantry, made["id"])
    assert stored.api_key_ciphertext and SECRET not in stored.api_key_ciphertext
    assert stored.extra_headers_ciphertext and HEADER_SECRET not in stored.extra_headers_ciphertext
    assert _box(gantry).open(stored.api_key_ciphertext) == SECRET
    assert _box(gantry).open_headers(stored.extra_headers_ciphertext) == {
        "OpenAI-Organization": HEADER_SECRET
    }
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "provider.created"
    assert event["target"] == {"type": "provider", "id": made["id"]}
    assert event["metadata"]["header_names"] == ["OpenAI-Organization"]


def test_local_provider_needs_nothing_and_takes_no_secrets(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws)
    assert made["has_api_key"] is False and made["has_headers"] is False
    gantry.admin.post(
        f"/workspaces/{ws}/providers",
        json={"name": name("p"), "type": "local", "api_key": SECRET},
        expect=400,
        code="validation_failed",
    )
    gantry.admin.patch(
        f"/providers/{made['id']}", json={"api_key": SECRET}, expect=409, code="conflict"
    )
    assert _stored(gantry, made["id"]).api_key_ciphertext is None


def test_a_compatible_provider_needs_a_base_url(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    answer = gantry.admin.post(
        f"/workspaces/{ws}/providers",
        json={"name": name("p"), "type": "openai_compatible"},
        expect=400,
        code="validation_failed",
    )
    assert answer.json["errors"][0]["field"] == "body"
    made = provider(gantry.admin, ws, type="openai_compatible", base_url="http://127.0.0.1:9/v1")
    gantry.admin.patch(
        f"/providers/{made['id']}", json={"base_url": None}, expect=409, code="conflict"
    )
    assert provider(gantry.admin, ws, type="ollama")["base_url"] is None  # the local default


def test_extra_headers_may_not_frame_the_request(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    gantry.admin.post(
        f"/workspaces/{ws}/providers",
        json={"name": name("p"), "type": "openai", "extra_headers": {"Content-Length": "1"}},
        expect=400,
        code="validation_failed",
    )


def test_names_are_unique_in_a_workspace(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    other = gantry.workspace(gantry.admin)["id"]
    first = provider(gantry.admin, ws, name="same")
    provider(gantry.admin, other, name="same")
    before = gantry.counts()
    gantry.admin.post(
        f"/workspaces/{ws}/providers",
        json={"name": "same", "type": "local"},
        expect=409,
        code="already_exists",
    )
    assert gantry.counts() == before
    second = provider(gantry.admin, ws)
    gantry.admin.patch(
        f"/providers/{second['id']}", json={"name": "same"}, expect=409, code="already_exists"
    )
    assert gantry.admin.get(f"/providers/{first['id']}", expect=200).json["name"] == "same"


def test_rotating_the_key_reseals_it_and_null_removes_it(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws, type="openai", api_key=SECRET)
    sealed = _stored(gantry, made["id"]).api_key_ciphertext
    rotated = "sk-proj-" + "R" * 40
    updated = gantry.admin.patch(
        f"/providers/{made['id']}", json={"api_key": rotated}, expect=200
    ).json
    assert updated["has_api_key"] is True
    stored = _stored(gantry, made["id"])
    assert stored.api_key_ciphertext != sealed
    assert stored.api_key_ciphertext is not None
    assert _box(gantry).open(stored.api_key_ciphertext) == rotated
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "provider.updated" and event["metadata"]["secrets"] == ["api_key"]
    assert rotated not in str(event)
    cleared = gantry.admin.patch(f"/providers/{made['id']}", json={"api_key": None}, expect=200)
    assert cleared.json["has_api_key"] is False
    assert _stored(gantry, made["id"]).api_key_ciphertext is None


def test_an_unchanged_update_records_nothing(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws, models=["a"])
    gantry.admin.patch(f"/providers/{made['id']}", json={"models": ["a"]}, expect=200)
    actions = [
        e["action"]
        for e in gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"]
    ]
    assert "provider.updated" not in actions


def test_a_provider_in_use_cannot_be_deleted(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws)
    used_by = backend(gantry.admin, ws, made["id"])
    gantry.admin.delete(f"/providers/{made['id']}", expect=409, code="provider_in_use")
    gantry.admin.get(f"/providers/{made['id']}", expect=200)
    gantry.admin.delete(f"/gateway/backends/{used_by['id']}", expect=204)
    gantry.admin.delete(f"/providers/{made['id']}", expect=204)
    gantry.admin.get(f"/providers/{made['id']}", expect=404)
    gantry.admin.delete(f"/providers/{made['id']}", expect=404)


def test_list_filters_by_type_and_pages(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = [provider(gantry.admin, ws) for _ in range(3)]
    made.append(provider(gantry.admin, ws, type="openai"))
    everything = gantry.walk(gantry.admin, f"/workspaces/{ws}/providers", limit=2)
    assert [p["id"] for p in everything] == [p["id"] for p in reversed(made)]
    page = gantry.admin.get(
        f"/workspaces/{ws}/providers", query={"type": "openai", "include_total": True}, expect=200
    ).json
    assert [p["id"] for p in page["items"]] == [made[-1]["id"]] and page["total"] == 1


def test_roles_and_visibility_on_the_flat_paths(gantry: Any) -> None:
    owner = gantry.user()
    ws = gantry.workspace(owner)["id"]
    made = provider(owner.session, ws)
    viewer = gantry.member(ws, owner, "viewer")
    editor = gantry.member(ws, owner, "editor")
    stranger = gantry.user()
    viewer.session.get(f"/providers/{made['id']}", expect=200)
    viewer.session.get(f"/workspaces/{ws}/providers", expect=200)
    editor.session.patch(
        f"/providers/{made['id']}", json={"models": ["x"]}, expect=403, code="insufficient_role"
    )
    editor.session.post(f"/providers/{made['id']}/test", expect=403, code="insufficient_role")
    editor.session.delete(f"/providers/{made['id']}", expect=403, code="insufficient_role")
    stranger.session.get(f"/providers/{made['id']}", expect=404)
    stranger.session.delete(f"/providers/{made['id']}", expect=404)
    gantry.admin.get("/providers/prv_" + "0" * 24, expect=404)


def test_testing_a_local_provider_needs_no_network(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws, models=["local-1"])
    result = gantry.admin.post(f"/providers/{made['id']}/test", expect=200).json
    assert result["ok"] is True and result["error"] is None
    assert result["models"] == ["local-1"]
    event = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200).json["items"][0]
    assert event["action"] == "provider.tested" and event["metadata"]["ok"] is True


def test_testing_sends_the_stored_credentials_and_lists_models(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    with fake_upstream() as upstream:
        made = provider(
            gantry.admin,
            ws,
            type="openai_compatible",
            base_url=upstream.base_url,
            api_key=SECRET,
            extra_headers={"X-Tenant": HEADER_SECRET},
        )
        result = gantry.admin.post(f"/providers/{made['id']}/test", expect=200).json
    assert result["ok"] is True and result["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert isinstance(result["latency_ms"], int)
    (seen,) = upstream.seen
    assert seen["Authorization"] == f"Bearer {SECRET}"
    assert seen["X-Tenant"] == HEADER_SECRET


def test_a_failing_provider_is_reported_without_its_secrets(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    with fake_upstream(status=401) as upstream:
        made = provider(
            gantry.admin,
            ws,
            type="openai_compatible",
            base_url=upstream.base_url,
            api_key="sk-test-upstream",
        )
        answer = gantry.admin.post(f"/providers/{made['id']}/test", expect=200)
    result = answer.json
    assert result["ok"] is False and result["models"] == []
    assert "401" in result["error"] and "sk-test-upstream" not in answer.get_data(as_text=True)
    log = gantry.admin.get(f"/workspaces/{ws}/audit-log", expect=200)
    assert "sk-test-upstream" not in log.get_data(as_text=True)


def test_a_slow_probe_holds_no_lock_on_the_workspace(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    other = provider(gantry.admin, ws)
    with fake_upstream(delay_s=2.0) as upstream:
        slow = provider(gantry.admin, ws, type="openai_compatible", base_url=upstream.base_url)
        with ThreadPoolExecutor(max_workers=1) as pool:
            tested = pool.submit(gantry.admin.post, f"/providers/{slow['id']}/test", expect=200)
            while not upstream.seen:  # the probe is out, waiting for the upstream
                time.sleep(0.01)
            started = time.monotonic()
            gantry.admin.patch(f"/providers/{other['id']}", json={"models": ["m"]}, expect=200)
            assert time.monotonic() - started < 1.0
            assert not tested.done()
            assert tested.result(timeout=10).json["ok"] is True


def test_an_unreachable_provider_is_an_outcome_not_an_error(gantry: Any) -> None:
    ws = gantry.workspace(gantry.admin)["id"]
    with fake_upstream() as upstream:
        url = upstream.base_url
    made = provider(gantry.admin, ws, type="openai_compatible", base_url=url)
    result = gantry.admin.post(f"/providers/{made['id']}/test", expect=200).json
    assert result["ok"] is False and result["latency_ms"] is None
    assert "could not be reached" in result["error"]


# ── the key that seals them ─────────────────────────────────────────────────────────────────


def test_the_first_start_writes_a_private_key_file(make_app: Any, tmp_path: Any) -> None:
    key_file = tmp_path / "keys" / "secrets.key"
    make_app(secrets_key_file=key_file)
    assert key_file.stat().st_mode & 0o777 == 0o600
    key = key_file.read_bytes()
    make_app(secrets_key_file=key_file)  # a second start reads it, never rewrites it
    assert key_file.read_bytes() == key


def test_secrets_survive_a_restart_with_the_same_key(
    make_app: Any, gantry_for: Any, tmp_path: Any
) -> None:
    gantry = gantry_for(make_app(secrets_passphrase="operator secret"))
    ws = gantry.workspace(gantry.admin)["id"]
    made = provider(gantry.admin, ws, type="openai", api_key=SECRET)
    again = make_app(secrets_passphrase="operator secret")
    stored = _stored(gantry, made["id"])
    assert stored.api_key_ciphertext is not None
    assert again.extensions["gantry"].secret_box.open(stored.api_key_ciphertext) == SECRET
    assert not (tmp_path / "secrets.key").exists()  # the passphrase needs no key file


def test_a_wrong_key_stops_start_up(make_app: Any, gantry_for: Any, tmp_path: Any) -> None:
    gantry = gantry_for(make_app(secrets_passphrase="the right one"))
    ws = gantry.workspace(gantry.admin)["id"]
    provider(gantry.admin, ws, type="openai", api_key=SECRET)
    with pytest.raises(SecretKeyError, match="sealed with another key than GANTRY_SECRET_KEY"):
        make_app(secrets_passphrase="a wrong one")
    (tmp_path / "secrets.key").write_bytes(SecretBox.new_key())
    with pytest.raises(SecretKeyError, match="another key than the key file"):
        make_app()


def test_a_lost_key_file_stops_start_up(make_app: Any, gantry_for: Any, tmp_path: Any) -> None:
    gantry = gantry_for(make_app())
    ws = gantry.workspace(gantry.admin)["id"]
    provider(gantry.admin, ws, type="local")  # no secrets: the key is not needed yet
    (tmp_path / "secrets.key").unlink()
    make_app()  # nothing sealed: a new key is written
    provider(gantry.admin, ws, type="openai", extra_headers={"X-A": HEADER_SECRET})
    (tmp_path / "secrets.key").unlink()
    with pytest.raises(SecretKeyError, match=r"key file .* is missing"):
        make_app()


def test_upstream_keys_are_redacted_from_log_lines() -> None:
    line = redact(f"POST /x?note={SECRET} body sk-ant-api03-{'k' * 20}")
    assert SECRET not in line and "sk-ant-api03" not in line
    assert line.count("sk-[redacted]") == 2
