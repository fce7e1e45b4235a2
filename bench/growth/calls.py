"""One request per operation of a generated package, that the operation's contract admits.

Values come from the mock's ``Synthesizer`` (deterministic, checked against the compiled schema):
the path parameters, the required query, header and cookie parameters, and a JSON body when the
operation takes one. Only what is required is sent, so every request is small and the same from
run to run. The calls are plain JSON, written by one process and replayed by another.
"""

from __future__ import annotations

import json
import re
from types import ModuleType
from typing import Any
from urllib.parse import quote, urlencode

from server.mock.synth import Synthesizer
from server.runtime.schemas import SchemaBundle

# ``<name>`` or ``<converter:name>`` in a Flask rule.
_RULE_PART = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _text(value: Any) -> str:
    """A parameter value as it travels in a URL, header or cookie (form style, not exploded)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(_text(item) for item in value)
    if isinstance(value, (dict, type(None))):
        return json.dumps(value)
    return str(value)


def _call(operation: Any, synth: Synthesizer) -> dict[str, Any]:
    path_values: dict[str, str] = {}
    query: list[tuple[str, str]] = []
    headers: dict[str, str] = {}
    cookies: list[str] = []
    for parameter in operation.parameters:
        if parameter.location != "path" and not parameter.required:
            continue
        value = synth.value(parameter.schema, "request")
        if parameter.location == "path":
            path_values[parameter.python_name] = quote(_text(value), safe="")
        elif parameter.location == "query" and isinstance(value, list) and parameter.explode:
            query.extend((parameter.name, _text(item)) for item in value)
        elif parameter.location == "query":
            query.append((parameter.name, _text(value)))
        elif parameter.location == "header":
            headers[parameter.name] = _text(value)
        else:
            cookies.append(f"{parameter.name}={quote(_text(value), safe='')}")
    if cookies:
        headers["Cookie"] = "; ".join(cookies)
    body = None
    content = operation.request_body.content if operation.request_body is not None else ()
    media = next((m for m in content if m.media_type.endswith("json")), None)
    if media is not None:
        body = json.dumps(synth.value(media.schema, "request"))
        headers["Content-Type"] = media.media_type
    path = _RULE_PART.sub(lambda m: path_values[m.group(1)], operation.rule)
    return {
        "operation_id": operation.operation_id,
        "method": operation.method,
        "target": f"{path}?{urlencode(query)}" if query else path,
        "headers": headers,
        "body": body,
    }


def one_call_per_operation(package: ModuleType) -> list[dict[str, Any]]:
    """A request for every operation of ``package`` (a generated package, already imported)."""
    synth = Synthesizer(SchemaBundle.from_package(package))
    return [_call(operation, synth) for operation in package.operations.OPERATIONS]
