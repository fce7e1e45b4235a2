"""The server as operators run it: gunicorn, a real socket, and a real browser on the docs."""

from __future__ import annotations

import shutil
import subprocess
import tempfile

import requests
import yaml

from contract_tests.live import LiveServer
from server.config import ROOT

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",
]


def test_serves_the_spec_it_was_generated_from(server: LiveServer) -> None:
    served = requests.get(f"{server.base_url}/api/v1/openapi.json", timeout=10)
    assert served.status_code == 200
    with (ROOT / "spec" / "openapi.yaml").open(encoding="utf-8") as handle:
        assert served.json() == yaml.safe_load(handle)


def test_bootstrap_token_drives_a_fresh_server(server: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    me = requests.get(f"{server.base_url}/api/v1/auth/me", headers=headers, timeout=10)
    assert me.status_code == 200
    assert me.json()["user"]["is_superadmin"] is True
    anonymous = requests.get(f"{server.base_url}/api/v1/auth/me", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["Content-Type"] == "application/problem+json"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")


def test_docs_page_renders_the_operations_in_a_browser(server: LiveServer) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, (
        "Chromium is required for this test: `make test` installs it (Debian: chromium)"
    )
    with tempfile.TemporaryDirectory() as profile:
        dom = subprocess.run(
            [
                chromium,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--dump-dom",
                f"{server.base_url}/api/v1/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
    # Swagger UI fetched /openapi.json and rendered it: the title and operation paths are in the DOM.
    assert "Gantry API" in dom
    assert "/workspaces/{workspace_id}/members" in dom
    assert "Unable to render this definition" not in dom
