"""Spec strings become safe Python names in one place."""

from __future__ import annotations

import pytest

from generator import names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("listPets", "list_pets"),
        ("getHTTPStatus", "get_http_status"),
        ("List Pets", "list_pets"),
        ("api-keys", "api_keys"),
        ("listV1Pets", "list_v1_pets"),
        ("oauth2Callback", "oauth2_callback"),
        ("workspace_id", "workspace_id"),
    ],
)
def test_snake_case(text: str, expected: str) -> None:
    assert names.snake_case(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("class", "class_"),
        ("from", "from_"),
        ("id", "id_"),
        ("type", "type_"),
        ("format", "format_"),
        ("2fa", "_2fa"),
        ("Idempotency-Key", "idempotency_key"),
        ("photo-id", "photo_id"),
    ],
)
def test_identifier_avoids_keywords_builtins_and_leading_digits(text: str, expected: str) -> None:
    assert names.identifier(text) == expected
    assert expected.isidentifier()


def test_pascal_case() -> None:
    assert names.pascal_case("gateway-routes") == "GatewayRoutes"


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/workspaces/{workspace_id}", "get_workspaces_by_workspace_id"),
        ("post", "/files/{id}.{ext}", "post_files_by_id_by_ext"),
        ("get", "/", "get_root"),
        ("delete", "/api-keys/{key-id}", "delete_api_keys_by_key_id"),
    ],
)
def test_handler_name_from_route(method: str, path: str, expected: str) -> None:
    assert names.handler_name_from_route(method, path) == expected
