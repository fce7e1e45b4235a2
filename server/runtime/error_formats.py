"""Operations whose errors keep another API's native envelope instead of problem+json.

The AI gateway's data plane speaks OpenAI's and Anthropic's APIs, whose SDKs read their own
error bodies. An operation declares its envelope with ``x-gantry-error-format: openai`` or
``anthropic``; every error the runtime answers for it (a missing credential, an invalid body,
a refused role, a rate limit, a domain rule) is then rendered in that envelope, with the same
status and headers a problem document would have had.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from flask import Response

from server.gateway import anthropic_wire, openai_wire
from server.gateway.errors import GatewayError
from server.runtime.errors import ApiError

ERROR_FORMAT_KEY = "x-gantry-error-format"
FORMATS = frozenset({"openai", "anthropic"})
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def error_formats(document: Mapping[str, Any] | None) -> Mapping[str, str]:
    """operationId → declared error format, for the operations that declare one."""
    formats: dict[str, str] = {}
    for item in ((document or {}).get("paths") or {}).values():
        if not isinstance(item, Mapping):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, Mapping) or ERROR_FORMAT_KEY not in operation:
                continue
            declared = operation[ERROR_FORMAT_KEY]
            if declared not in FORMATS:
                raise ValueError(
                    f"{operation.get('operationId')}: {ERROR_FORMAT_KEY} must be one of "
                    f"{sorted(FORMATS)}, not {declared!r}"
                )
            formats[str(operation.get("operationId"))] = declared
    return MappingProxyType(formats)


def native_error_response(error: ApiError, error_format: str, request_id: str) -> Response:
    """``error`` in the ``error_format`` envelope, with its status and headers."""
    message = error.detail
    param = None
    if error.errors:
        first = error.errors[0]
        param = first.field
        message = f"{message} {first.field}: {first.message}"
    native = GatewayError(error.status, message, code=error.code, param=param)
    body = (
        openai_wire.emit_error(native)
        if error_format == "openai"
        else anthropic_wire.emit_error(native, request_id)
    )
    response = Response(orjson.dumps(body), status=error.status, content_type="application/json")
    for name, value in error.headers.items():
        response.headers[name] = value
    return response
