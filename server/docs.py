"""The interactive docs page: Swagger UI from the locally installed bundle, no CDN."""

from __future__ import annotations

from html import escape
from pathlib import Path

from flask import Flask, Response, send_from_directory
from openapi_ui_bundles.swagger_ui import static_path as swagger_ui_path

from server.runtime.errors import NotFound
from server.state import AppState

ASSETS_URL = "/api/v1/docs/assets"
_SWAGGER_DIR = Path(swagger_ui_path)
_STATIC_DIR = Path(__file__).resolve().parent / "static"
_OWN_ASSETS = {"docs-init.js"}
_SWAGGER_ASSETS = {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"}


def docs_page(title: str, spec_url: str) -> str:
    """The HTML of the docs page."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)}</title>
<link rel="stylesheet" href="{ASSETS_URL}/swagger-ui.css">
</head>
<body data-spec-url="{escape(spec_url)}">
<div id="swagger-ui"></div>
<script src="{ASSETS_URL}/swagger-ui-bundle.js"></script>
<script src="{ASSETS_URL}/swagger-ui-standalone-preset.js"></script>
<script src="{ASSETS_URL}/docs-init.js"></script>
</body>
</html>
"""


def install_docs_assets(app: Flask, state: AppState) -> None:
    """Serve the few static files the docs page needs (switched off with the docs)."""

    @app.get(f"{ASSETS_URL}/<path:filename>")
    def docs_asset(filename: str) -> Response:
        if not state.config.openapi_enabled:
            raise NotFound("The API documentation is disabled.")
        if filename in _OWN_ASSETS:
            return send_from_directory(_STATIC_DIR, filename, max_age=3600)
        if filename in _SWAGGER_ASSETS:
            return send_from_directory(_SWAGGER_DIR, filename, max_age=3600)
        raise NotFound(f"No docs asset {filename!r}.")
