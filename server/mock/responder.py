"""The mock's handlers: each operation answers from its documented responses.

The status is the lowest documented 2XX (else `default` as 200), or the one asked for with
`Prefer: code=NNN`; `Prefer: example=NAME` picks the response and media type that document that
example. The media type follows `Accept` among the documented ones (JSON first otherwise). The
body is the documented example when it is valid against the schema (or was asked for by name),
else a value synthesised from the schema; documented response headers are filled the same way.
Answers are computed once per (status, media type, example) and reused.

A refused request (400, 401, 415…) gets the response the operation documents for that status
(the exact status, else its `4XX`, else `default`) in a documented media type and valid against
the documented schema: the runtime's problem document when it is one, else a documented example
or a synthesised value. Problem+json is what is left when nothing is documented (`refusal`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from flask import Response
from flask import request as flask_request

from server.mock.synth import Synthesizer
from server.runtime.context import Request
from server.runtime.errors import BadRequest

_PREFER_ITEM = re.compile(r"""\s*([A-Za-z-]+)\s*=\s*("([^"]*)"|[^,;\s]*)""")
_NO_BODY = frozenset({204, 205, 304})
# A 1x1 transparent PNG, so an image response is an image.
_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)
_CONCRETE = {"*/*": "application/octet-stream", "image/*": "image/png", "text/*": "text/plain"}
_SKIPPED_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


def is_json(media_type: str) -> bool:
    """`application/json` and `application/*+json`."""
    essence = media_type.split(";", 1)[0].strip().lower()
    return essence == "application/json" or (
        essence.startswith("application/") and essence.endswith("+json")
    )


def parse_prefer(header: str | None) -> dict[str, str]:
    """`code=404, example=missing` → {"code": "404", "example": "missing"} (RFC 7240 style)."""
    found: dict[str, str] = {}
    for match in _PREFER_ITEM.finditer(header or ""):
        name, raw, quoted = match.group(1).lower(), match.group(2), match.group(3)
        found.setdefault(name, quoted if quoted is not None else raw)
    return found


@dataclass(frozen=True)
class _Answer:
    status: int
    media_type: str | None
    body: bytes
    headers: tuple[tuple[str, str], ...]


class Responder:
    """The handler of one operation in the mock."""

    def __init__(self, operation: Any, synth: Synthesizer) -> None:
        self.operation = operation
        self.synth = synth
        self.responses = tuple(operation.responses)
        self._answers: dict[tuple[str, str | None, str | None], _Answer] = {}

    def __call__(self, request: Request) -> Response:
        """Answer one (already validated and authorised) request."""
        prefer = parse_prefer(flask_request.headers.get("Prefer"))
        response, status, example = self.choose(prefer)
        media = self.negotiate(response, example)
        cache_key = (str(status), media.media_type if media else None, example)
        answer = self._answers.get(cache_key)
        if answer is None:
            answer = self.answer(response, status, media, example)
            self._answers[cache_key] = answer
        result = Response(answer.body, status=answer.status)
        if answer.media_type is not None:
            result.headers["Content-Type"] = answer.media_type
        for name, value in answer.headers:
            result.headers[name] = value
        return result

    # -- which response ---------------------------------------------------------------------

    def choose(self, prefer: Mapping[str, str]) -> tuple[Any, int, str | None]:
        """(documented response, status to send, example name) for the request's preferences."""
        example = prefer.get("example")
        code = prefer.get("code")
        if code is not None:
            if not code.isdigit() or len(code) != 3:
                raise BadRequest(f"Prefer: code={code} is not a status code.")
            response = self.by_status(int(code))
            if response is None:
                raise BadRequest(f"Prefer: code={code} is not documented for this operation.")
            return response, int(code), example
        if example is not None:
            for response in self.ordered():
                if any(example in media.examples for media in response.content):
                    return response, _status_of(response.status), example
            raise BadRequest(f"Prefer: example={example} is not documented for this operation.")
        ordered = self.ordered()
        if not ordered:
            raise BadRequest("This operation documents no response.")
        return ordered[0], _status_of(ordered[0].status), None

    def by_status(self, code: int) -> Any:
        text = str(code)
        for status in (text, text[0] + "XX", "default"):
            for response in self.responses:
                if response.status.upper() == status.upper():
                    return response
        return None

    def ordered(self) -> list[Any]:
        """Documented responses, the preferred first: 2XX by code, then default, then others."""

        def rank(response: Any) -> tuple[int, str]:
            status = response.status.upper()
            if status.startswith("2"):
                return (0, status.replace("X", "0"))
            if status == "DEFAULT":
                return (1, status)
            return (2, status.replace("X", "0"))

        return sorted(self.responses, key=rank)

    def negotiate(self, response: Any, example: str | None) -> Any:
        """The documented media type to answer with (None when there is no content)."""
        content = list(response.content)
        if not content:
            return None
        if example is not None:
            with_example = [m for m in content if example in m.examples]
            content = with_example or content
        accept = flask_request.accept_mimetypes
        if accept and accept.provided:
            offered = [_concrete(m.media_type) for m in content]
            best = accept.best_match(offered)
            if best is not None:
                return content[offered.index(best)]
        json_first = sorted(content, key=lambda m: not is_json(m.media_type))
        return json_first[0]

    def refusal(self, refused: Response) -> Response:
        """`refused` (the runtime's problem+json answer) as the operation documents that
        status, when it does; `refused` itself otherwise."""
        status = refused.status_code
        documented = self.by_status(status)
        if documented is None:
            return refused
        media = self.negotiate(documented, None)
        if media is not None and refused.mimetype == _essence(media.media_type):
            problem = refused.get_json(silent=True)
            if problem is not None and self.synth.is_valid(media.schema, problem):
                return refused  # the runtime's own document is what the spec describes
        cache_key = (f"refused {status}", media.media_type if media else None, None)
        answer = self._answers.get(cache_key)
        if answer is None:
            answer = self.answer(documented, status, media, None)
            self._answers[cache_key] = answer
        result = Response(answer.body, status=status)
        for name, value in refused.headers.items():
            if name.lower() not in _SKIPPED_HEADERS:
                result.headers[name] = value  # WWW-Authenticate, Allow, Retry-After…
        if answer.media_type is not None:
            result.headers["Content-Type"] = answer.media_type
        for name, value in answer.headers:
            result.headers[name] = value
        return result

    # -- what to send -----------------------------------------------------------------------

    def answer(self, response: Any, status: int, media: Any, example: str | None) -> _Answer:
        headers = tuple(self.headers(response))
        if media is None or status in _NO_BODY:
            return _Answer(status, None, b"", headers)
        value = self.body_value(media, example)
        media_type = _concrete(media.media_type)
        return _Answer(status, media_type, _encode(value, media_type, media.schema), headers)

    def body_value(self, media: Any, example: str | None) -> Any:
        if example is not None and example in media.examples:
            return media.examples[example]  # asked for by name: as documented
        for name in sorted(media.examples):
            candidate = media.examples[name]
            if not is_json(media.media_type) or self.synth.is_valid(media.schema, candidate):
                return candidate
        if _is_binary(media.media_type, media.schema):
            return _PNG if _concrete(media.media_type) == "image/png" else b"mock"
        return self.synth.value(media.schema)

    def headers(self, response: Any) -> list[tuple[str, str]]:
        found = []
        for name, schema in sorted(response.header_schemas.items()):
            if name.lower() in _SKIPPED_HEADERS:
                continue
            value = self.synth.value(schema)
            if value is None and name not in response.required_headers:
                continue
            found.append((name, _header_text(value)))
        return found


def _essence(media_type: str) -> str:
    return media_type.split(";", 1)[0].strip().lower()


def _status_of(status: str) -> int:
    upper = status.upper()
    if upper == "DEFAULT":
        return 200
    return int(upper.replace("X", "0"))


def _concrete(media_type: str) -> str:
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence in _CONCRETE:
        return _CONCRETE[essence]
    if essence.endswith("/*"):
        return essence[:-1] + "x-mock"
    return media_type


def _is_binary(media_type: str, schema: Any) -> bool:
    essence = media_type.split(";", 1)[0].strip().lower()
    if essence.startswith(("image/", "audio/", "video/")) or essence in (
        "application/octet-stream",
        "application/pdf",
        "application/zip",
        "*/*",
    ):
        return True
    return isinstance(schema, Mapping) and schema.get("format") == "binary"


def _encode(value: Any, media_type: str, schema: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    essence = media_type.split(";", 1)[0].strip().lower()
    if is_json(essence):
        return json.dumps(value, ensure_ascii=False).encode()
    if essence == "application/x-www-form-urlencoded" and isinstance(value, Mapping):
        return urlencode({k: _header_text(v) for k, v in value.items()}).encode()
    if essence == "text/csv" and not isinstance(value, str):
        return _csv(value).encode()
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, ensure_ascii=False).encode()


def _csv(value: Any) -> str:
    rows = value if isinstance(value, list) else [value]
    if rows and all(isinstance(r, Mapping) for r in rows):
        columns = list(dict.fromkeys(k for r in rows for k in r))
        lines = [",".join(columns)]
        lines += [",".join(_header_text(r.get(c, "")) for c in columns) for r in rows]
        return "\n".join(lines) + "\n"
    return "\n".join(_header_text(r) for r in rows) + "\n"


def _header_text(value: Any) -> str:
    """A value as a header (or form field) writes it: simple style, comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(_header_text(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k},{_header_text(v)}" for k, v in value.items())
    text = str(value)
    return text.encode("latin-1", "replace").decode("latin-1")


Resolver = Callable[[Any], Callable[[Request], Response]]
