"""Differential test: Gantry's compiled request validation against openapi-core's.

For every operation of the bench contract (``bench/contract/openapi.yaml``, OpenAPI 3.0) and of
the API (``spec/openapi.yaml``, 3.1), schemathesis generates requests: the coverage phase's
deterministic boundary cases first (as Hypothesis explicit examples), then Hypothesis positive
and negative fuzzing. Each request goes, as the same WSGI environ, through

* Gantry's hot path: the contract gate and the real ``Dispatcher`` as ``create_app`` wires them,
  with a guard that lets everyone in and a handler that echoes nothing, so parameter parsing and
  body validation are all that can refuse it;
* openapi-core 0.23 ``validate_request`` over the same document with its security removed
  (authentication is not request validation),

and both must accept or reject it alike. A disagreement fails the test unless it is one of the
narrow, documented known exceptions in ``KNOWN`` (see ``README.md`` beside this file): each is
openapi-core's bug or a documented Gantry rule, never a Gantry bug.

Budget: ``GANTRY_DIFF_EXAMPLES`` fuzzing examples per operation (default 30) on top of the
coverage cases; ``GANTRY_DIFF_SEED`` (an integer) makes the fuzzing random but reproducible;
unset, it is derandomized so CI sees the same requests every run.
"""

from __future__ import annotations

import copy
import io
import json
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jsonschema_rs
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, seed, settings
from openapi_core import OpenAPI
from openapi_core.contrib.werkzeug import WerkzeugOpenAPIRequest
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request as WerkzeugRequest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `bench` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402

from server.runtime.dispatch import Dispatcher  # noqa: E402
from server.runtime.gate import GatedFlask, install_contract_gate  # noqa: E402
from server.runtime.pagination import CursorCodec  # noqa: E402
from server.runtime.problem import install_error_handlers  # noqa: E402
from server.runtime.schemas import SchemaBundle  # noqa: E402

EXAMPLES = int(os.environ.get("GANTRY_DIFF_EXAMPLES", "30"))
SEED = os.environ.get("GANTRY_DIFF_SEED")

# ── the two validators ──────────────────────────────────────────────────────────────────────


class LetEveryoneIn:
    """A guard that authenticates no one and refuses no one."""

    def authenticate(self, operation: Any, http: Any, session: Any) -> None:
        return None

    def authorize(self, operation: Any, principal: Any, path: Any, session: Any) -> None:
        return None


def _echo(request: Any) -> None:
    return None  # 204: validation let it through


def gantry_app(package: Any) -> Flask:
    """The runtime over a generated package as ``create_app`` wires it (the contract gate in
    front of Flask), with validation as the only check: everyone is let in."""
    from importlib import import_module

    app = GatedFlask(f"differential_{package.__name__}")
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    install_error_handlers(app)
    dispatcher = Dispatcher(
        bundle=SchemaBundle.from_package(package),
        models=import_module(f"{package.__name__}.models"),
        guard=LetEveryoneIn(),
        cursors=CursorCodec(b"differential"),
        handlers=lambda operation: _echo,
    )
    import_module(f"{package.__name__}.routes").register_routes(app, dispatcher.bind)
    install_contract_gate(app, dispatcher.admit)
    return app


def without_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document with every security requirement removed (auth is not validation)."""
    document = copy.deepcopy(document)
    document["security"] = []
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                operation.pop("security", None)
    return document


@dataclass
class Verdict:
    accepted: bool
    detail: str


def gantry_verdict(app: Flask, environ: dict[str, Any], body: bytes) -> Verdict:
    environ = dict(environ, **{"wsgi.input": io.BytesIO(body)})
    status: list[str] = []
    chunks = app(environ, lambda s, h, e=None: status.append(s))
    payload = b"".join(chunks)
    code = int(status[0].split(" ", 1)[0])
    if code < 300:
        return Verdict(True, str(code))
    detail = payload.decode("utf-8", "replace")
    try:
        problem = json.loads(payload)
    except ValueError:
        problem = {}
    # A cursor is checked after validation (it must be one the server signed): a 400
    # invalid_cursor means validation itself let the request through.
    if code == 400 and problem.get("code") == "invalid_cursor":
        return Verdict(True, "invalid_cursor")
    return Verdict(False, f"{code} {detail[:600]}")


def core_verdict(openapi: OpenAPI, environ: dict[str, Any], body: bytes) -> Verdict:
    request = WerkzeugRequest(dict(environ, **{"wsgi.input": io.BytesIO(body)}))
    try:
        openapi.validate_request(WerkzeugOpenAPIRequest(request))
    except Exception as exc:  # every openapi-core refusal is an exception
        return Verdict(False, _describe(exc))
    return Verdict(True, "valid")


def _describe(exc: BaseException) -> str:
    parts = []
    current: BaseException | None = exc
    while current is not None and len(parts) < 4:
        try:
            parts.append(f"{type(current).__name__}: {current}")
        except Exception:  # str() of some openapi-core errors raises on non-UTF-8 bodies
            parts.append(type(current).__name__)
        details = getattr(current, "schema_errors", None)
        if details:
            parts.extend(str(e.message) for e in details)
        current = current.__cause__
    return " <- ".join(parts)[:800]


# ── known exceptions: each a documented openapi-core bug or Gantry rule (README.md) ─────────

_INT = re.compile(r"[+-]?[0-9]{1,40}")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


@dataclass
class Sent:
    """The request as sent: its raw parameter values and body."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    content_type: str


def _python_lenient_scalar(raw: str) -> bool:
    """A value Python's ``int()``/``float()``/openapi-core's ``forcebool`` read, that is not
    the plain ASCII form of a number or boolean (openapi-core casts parameters with them)."""
    if raw.lower() in ("y", "yes", "t", "true", "on", "1", "n", "no", "f", "false", "off", "0"):
        return raw not in ("true", "false")
    for cast in (int, float):
        try:
            cast(raw)
        except (ValueError, OverflowError):
            continue
        return not (_INT.fullmatch(raw) or _NUMBER.fullmatch(raw))
    return False


def lenient_casting(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """OC-1: openapi-core casts parameters with Python's int()/float() and a yes/no/on/off
    boolean table, so " 7", "1_000", Arabic-Indic digits, "nan", "inf", "yes" pass as numbers and booleans."""
    if gantry.accepted or not core.accepted or not _COERCION.search(gantry.detail):
        return False
    values = [v for _, v in sent.query] + list(sent.headers.values()) + sent.path.split("/")
    return any(_python_lenient_scalar(_unquote(v)) for v in values)


# Gantry's messages for a parameter that is not the plain form of its type.
_COERCION = re.compile(r"must be (an integer|a number|a finite number|true or false|one of)")


def trailing_newline(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """OC-2: openapi-core (Python ``re.search``) lets ``$`` match before a final newline, so a
    value ending in "\\n" passes ``pattern: ^…$``; ECMA-262 (and Gantry) say it does not."""
    if gantry.accepted or not core.accepted:
        return False
    values = [v for _, v in sent.query] + list(sent.headers.values()) + sent.path.split("/")
    if any(_unquote(v).endswith("\n") for v in values):
        return True
    return b'\\n"' in sent.body


def non_json_constant(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """OC-3: openapi-core decodes bodies with Python's json.loads as is, which reads NaN,
    Infinity and -Infinity; they are not JSON (RFC 8259), and Gantry refuses them."""
    if gantry.accepted or not core.accepted or "malformed JSON" not in gantry.detail:
        return False
    return re.search(rb"(?<![\w\"])-?(NaN|Infinity)(?![\w\"])", sent.body) is not None


def lone_surrogate(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """G-3 (Gantry rule, I-JSON, RFC 7493): a string with an unpaired surrogate ("\\ud800") is
    refused; openapi-core accepts it (and a handler could not store it as UTF-8)."""
    return not gantry.accepted and core.accepted and "unpaired surrogate" in gantry.detail


def nul_character(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """G-4 (Gantry rule, documented in the spec): a NUL in a string parameter or a JSON body
    string is refused (PostgreSQL text cannot hold one); openapi-core accepts it."""
    return not gantry.accepted and core.accepted and "NUL character" in gantry.detail


def duplicate_member(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """G-5 (Gantry rule, I-JSON, RFC 7493 §2.3): an object naming a member twice is refused;
    openapi-core keeps the last value."""
    return not gantry.accepted and core.accepted and "is given more than once" in gantry.detail


def lax_email_format(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """OC-4: openapi-core's ``format: email`` check (jsonschema's) only asks for an "@", so "@"
    or "a@" pass; Gantry's (jsonschema-rs) checks the address syntax."""
    return not gantry.accepted and core.accepted and 'is not a \\"email\\"' in gantry.detail


_URI = jsonschema_rs.Draft202012Validator({"format": "uri"}, validate_formats=True)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def unchecked_uri_format(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """OC-5: openapi-core checks ``format: uri`` only when the optional ``rfc3987`` package is
    installed, so "https://^K<e" passes; Gantry's (jsonschema-rs) checks RFC 3986 syntax."""
    if gantry.accepted or not core.accepted:
        return False
    try:
        body = json.loads(sent.body)
    except ValueError:
        return False
    return any(
        s.startswith(("http://", "https://")) and not _URI.is_valid(s) for s in _strings(body)
    )


def repeated_parameter(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """G-1 (Gantry rule): a non-array query parameter given twice is refused ("must be given
    once"); openapi-core silently takes one of the values."""
    if gantry.accepted or not core.accepted:
        return False
    names = [k for k, _ in sent.query]
    return len(names) != len(set(names)) and "must be given once" in gantry.detail


def unknown_parameter(sent: Sent, gantry: Verdict, core: Verdict) -> bool:
    """G-2 (Gantry rule, documented in the spec): a query parameter the operation does not
    declare is refused with 400 unknown_parameter; openapi-core ignores it."""
    return not gantry.accepted and core.accepted and "unknown_parameter" in gantry.detail


KNOWN: tuple[Callable[[Sent, Verdict, Verdict], bool], ...] = (
    lenient_casting,
    trailing_newline,
    non_json_constant,
    lone_surrogate,
    nul_character,
    duplicate_member,
    lax_email_format,
    unchecked_uri_format,
    repeated_parameter,
    unknown_parameter,
)


def _unquote(value: str) -> str:
    from urllib.parse import unquote

    return unquote(value)


# ── the specs under test ────────────────────────────────────────────────────────────────────


@dataclass
class Target:
    name: str
    document: dict[str, Any]
    app: Flask
    openapi: OpenAPI


def _target(name: str, spec: Path, package_name: str) -> Target:
    from importlib import import_module

    document = without_security(yaml.safe_load(spec.read_text(encoding="utf-8")))
    return Target(
        name=name,
        document=document,
        app=gantry_app(import_module(package_name)),
        openapi=OpenAPI.from_dict(document),
    )


TARGETS = {
    "bench": _target("bench", ROOT / "bench/contract/openapi.yaml", "bench.contract.generated"),
    "api": _target("api", ROOT / "spec/openapi.yaml", "generated"),
}


def _schema(target: Target) -> Any:
    config = schemathesis.Config()  # not the repository's schemathesis.toml
    schema = schemathesis.openapi.from_dict(target.document, config=config)
    schema.app = target.app  # WSGI transport: cases serialise to werkzeug's arguments
    schema.config.generation.update(
        modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE],
        max_examples=EXAMPLES,
        with_security_parameters=False,
        allow_extra_parameters=False,
    )
    schema.config.phases.update(phases=["coverage", "fuzzing"])
    return schema


SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=SEED is None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate, Phase.shrink],
)

STATS: dict[str, list[int]] = {}  # target -> [requests, agreements, known exceptions, accepted]


def _check(target: Target, case: Any) -> None:
    kwargs = case.as_transport_kwargs()
    builder = EnvironBuilder(base_url="http://localhost", **kwargs)
    try:
        environ = builder.get_environ()
        body = environ.pop("wsgi.input").read()  # the encoded body, form bodies included
    finally:
        builder.close()
    gantry = gantry_verdict(target.app, environ, body)
    core = core_verdict(target.openapi, environ, body)
    stats = STATS.setdefault(target.name, [0, 0, 0, 0])
    stats[0] += 1
    if gantry.accepted == core.accepted:
        stats[1] += 1
        stats[3] += gantry.accepted
        return
    sent = Sent(
        method=environ["REQUEST_METHOD"],
        path=environ.get("PATH_INFO", ""),
        query=parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True),
        headers={k: v for k, v in environ.items() if k.startswith("HTTP_")},
        body=body,
        content_type=environ.get("CONTENT_TYPE", ""),
    )
    for known in KNOWN:
        if known(sent, gantry, core):
            stats[2] += 1
            return
    raise AssertionError(
        f"Gantry and openapi-core disagree on {sent.method} {environ.get('PATH_INFO')}"
        f"?{environ.get('QUERY_STRING', '')}\n"
        f"  headers: {sent.headers}\n  content-type: {sent.content_type!r}\n"
        f"  body: {body[:500]!r}\n"
        f"  gantry: {'accepts' if gantry.accepted else 'rejects'} ({gantry.detail})\n"
        f"  openapi-core: {'accepts' if core.accepted else 'rejects'} ({core.detail})"
    )


bench_schema = _schema(TARGETS["bench"])
api_schema = _schema(TARGETS["api"])


def _seeded(test: Callable[..., Any]) -> Callable[..., Any]:
    return seed(int(SEED))(test) if SEED is not None else test


@bench_schema.parametrize()
@SETTINGS
@_seeded
def test_bench_contract(case: Any) -> None:
    _check(TARGETS["bench"], case)


@api_schema.parametrize()
@SETTINGS
@_seeded
def test_api_spec(case: Any) -> None:
    _check(TARGETS["api"], case)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Any:
    yield
    for name, (total, agreed, known, accepted) in STATS.items():
        print(
            f"\ndifferential {name}: {total} requests ({accepted} accepted by both, "
            f"{agreed - accepted} rejected by both, {known} known exceptions)"
        )


# ── hand-written edge cases: each known exception shown by a minimal request ─────────────────

AUTHLESS_JSON = {"Content-Type": "application/json"}
ITEMS = "/bench/v1/items"
WS = "/api/v1/workspaces"


@dataclass(frozen=True)
class Edge:
    target: str
    method: str
    path: str
    query: str = ""
    body: bytes = b""
    content_type: str | None = None
    expect: str = "agree"  # or the name of the known exception it demonstrates


EDGES = [
    # OC-1: Python's int()/float()/boolean table in openapi-core's parameter casting.
    Edge("bench", "GET", ITEMS, "limit=%207", expect="lenient_casting"),
    Edge("bench", "GET", ITEMS, "limit=1_0", expect="lenient_casting"),
    Edge("bench", "GET", ITEMS, "limit=%D9%A7", expect="lenient_casting"),  # U+0667
    Edge("api", "GET", WS, "include_total=yes", expect="lenient_casting"),
    Edge("api", "GET", WS, "include_total=True", expect="lenient_casting"),
    Edge("api", "GET", WS, "include_total=1", expect="lenient_casting"),
    # OC-4: "format: email" as a single "@".
    Edge("api", "GET", "/api/v1/users/lookup", "email=%40", expect="lax_email_format"),
    Edge("api", "GET", "/api/v1/admin/users", "q=a%00b", expect="nul_character"),
    Edge("api", "GET", "/api/v1/users/lookup", "email=a%40example.com"),
    # OC-2: "$" before a final newline.
    Edge("bench", "GET", ITEMS, "cursor=abc%0A", expect="trailing_newline"),
    # G-1 and G-2: Gantry's documented parameter rules.
    Edge("bench", "GET", ITEMS, "limit=5&limit=6", expect="repeated_parameter"),
    Edge("bench", "GET", ITEMS, "extra=1", expect="unknown_parameter"),
    # Agreements worth pinning down.
    Edge("bench", "GET", ITEMS, "limit=%2B7"),
    Edge("bench", "GET", ITEMS, "limit=007"),
    Edge("bench", "GET", ITEMS, "limit=7.0"),
    Edge("bench", "GET", ITEMS, "limit="),
    Edge("bench", "GET", ITEMS, "limit=101"),
    Edge("bench", "GET", ITEMS, "cursor="),
    Edge("bench", "GET", f"{ITEMS}/itm_0000000a"),
    Edge("bench", "GET", f"{ITEMS}/itm_0000000A"),
    Edge("bench", "GET", f"{ITEMS}/itm_0000000%0A"),
    Edge("api", "GET", WS, "include_total=true&order=asc&limit=200"),
    Edge("api", "GET", WS, "order=ASC"),
    Edge("api", "GET", WS, "limit=0"),
    Edge(
        "bench", "POST", ITEMS, body=b'{"name": "x", "price": 1}', content_type="application/json"
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1}',
        content_type="application/json; charset=utf-8",
    ),
    Edge("bench", "POST", ITEMS, body=b'{"name": "x", "price": 1}', content_type="text/plain"),
    Edge("bench", "POST", ITEMS, body=b'{"name": "x", "price": 1}'),
    Edge("bench", "POST", ITEMS, body=b"", content_type="application/json"),
    Edge("bench", "POST", ITEMS, body=b'{"name": "x", "price": 1', content_type="application/json"),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": true}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": NaN}',
        content_type="application/json",
        expect="non_json_constant",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1e400}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "name": "", "price": 1}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "quantity": 2}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "quantity": 1.0}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "description": null}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "tags": null}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "\\ud800", "price": 1}',
        content_type="application/json",
        expect="lone_surrogate",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "other": 1}',
        content_type="application/json",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "a\\u0000b", "price": 1}',
        content_type="application/json",
        expect="nul_character",
    ),
    Edge(
        "bench",
        "POST",
        ITEMS,
        body=b'{"name": "x", "price": 1, "price": 2}',
        content_type="application/json",
        expect="duplicate_member",
    ),
    Edge("bench", "POST", ITEMS, body=b"\xff\xfe", content_type="application/json"),
    Edge("bench", "POST", ITEMS, body=b"[]", content_type="application/json"),
    Edge("bench", "DELETE", ITEMS),
]


@pytest.mark.parametrize(
    "edge", EDGES, ids=lambda e: f"{e.method} {e.path}?{e.query} {e.body[:40]!r}"
)
def test_edge_cases(edge: Edge) -> None:
    target = TARGETS[edge.target]
    headers = {"Content-Type": edge.content_type} if edge.content_type else {}
    builder = EnvironBuilder(
        base_url="http://localhost",
        method=edge.method,
        path=edge.path,
        query_string=edge.query,
        headers=headers,
        data=edge.body or None,
    )
    try:
        environ = builder.get_environ()
        body = environ.pop("wsgi.input").read()
    finally:
        builder.close()
    gantry = gantry_verdict(target.app, environ, body)
    core = core_verdict(target.openapi, environ, body)
    verdicts = f"gantry: {gantry}\nopenapi-core: {core}"
    if edge.expect == "agree":
        assert gantry.accepted == core.accepted, verdicts
        return
    assert gantry.accepted != core.accepted, f"no longer a disagreement:\n{verdicts}"
    sent = Sent(
        method=edge.method,
        path=environ.get("PATH_INFO", ""),
        query=parse_qsl(edge.query, keep_blank_values=True),
        headers={k: v for k, v in environ.items() if k.startswith("HTTP_")},
        body=body,
        content_type=edge.content_type or "",
    )
    matched = [known.__name__ for known in KNOWN if known(sent, gantry, core)]
    assert matched == [edge.expect], f"{matched}\n{verdicts}"
