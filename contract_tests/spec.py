"""What the suite knows about the API, all of it read from the spec.

The operation table is ``generated.operations.OPERATIONS`` (what the server routes); the raw
document (examples, links, response descriptions) is the one the server serves. Nothing here
names an operation: a new operation in the spec is picked up by every part of the suite.

The auth rules below are the spec's own words turned into code (``info.description``,
"Authentication"): ``security: []`` is public; otherwise ``x-gantry-min-role`` is ``any`` (any
credential), ``user`` (a session or PAT, not an API key), ``session`` (the cookie only),
``superadmin``, or a workspace role for operations under ``/workspaces/{workspace_id}``, where
a non-member gets 404 "exactly as if it did not exist" and a member below the role 403.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from generated.operations import OPERATIONS, Operation
from server.vocabulary import SCOPE_CAPS, WORKSPACE_ROLES

API_ROOT = "/api/v1"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WORKSPACE_PARAM = "workspace_id"  # the tenancy scope of workspace roles (spec: "Authentication")
_PATH_PARAM = re.compile(r"{([^}]+)}")
_CODE = re.compile(r"`([a-z_]+)`")

# ── operations ────────────────────────────────────────────────────────────────────────────────


def operations() -> tuple[Operation, ...]:
    """Every operation the server routes, in the generated order (path, then method)."""
    return OPERATIONS


def spec_path(op: Operation) -> str:
    """The operation's path as written in the spec (without the server's base path)."""
    return op.path[len(API_ROOT) :] if op.path.startswith(API_ROOT) else op.path


def label(op: Operation) -> str:
    """``METHOD /path``, the operation's name in schemathesis and in every report."""
    return f"{op.method} {spec_path(op)}"


def path_params(op: Operation) -> list[str]:
    """Path parameter names in the order they appear in the path."""
    return _PATH_PARAM.findall(op.path)


def by_id(operation_id: str) -> Operation:
    for op in OPERATIONS:
        if op.operation_id == operation_id:
            return op
    raise KeyError(operation_id)


def by_label(text: str) -> Operation | None:
    for op in OPERATIONS:
        if label(op) == text:
            return op
    return None


def is_public(op: Operation) -> bool:
    return not op.security or op.min_role == "public"


def accepts_session(op: Operation) -> bool:
    """Whether a cookie session is one of the operation's security alternatives."""
    return any(any(scheme_is_cookie(s) for s in alt) for alt in op.security)


def scheme_is_cookie(name: str) -> bool:
    from generated.operations import SECURITY_SCHEMES

    scheme = SECURITY_SCHEMES.get(name)
    return scheme is not None and scheme.type == "apiKey" and scheme.location == "cookie"


def success_statuses(op: Operation) -> list[int]:
    return [int(r.status) for r in op.responses if r.status.isdigit() and r.status[0] == "2"]


def documented_statuses(op: Operation) -> set[str]:
    return {r.status for r in op.responses}


def is_list(op: Operation) -> bool:
    """The pagination convention, as the generator detected it (limit + cursor → items, next_cursor)."""
    return bool(op.is_list)


def list_operations() -> list[Operation]:
    return [op for op in OPERATIONS if is_list(op)]


def query_param(op: Operation, name: str) -> Any:
    for p in op.parameters:
        if p.location == "query" and p.name == name:
            return p
    return None


# ── the raw document: examples, links, documented codes ───────────────────────────────────────


@dataclass(frozen=True)
class Document:
    """The served OpenAPI document, with the look-ups the suite needs."""

    raw: Mapping[str, Any]

    def resolve(self, node: Any) -> Any:
        """``node`` with a top-level ``$ref`` (into this document) followed."""
        seen = 0
        while isinstance(node, Mapping) and "$ref" in node and seen < 20:
            ref = str(node["$ref"])
            assert ref.startswith("#/"), ref
            target: Any = self.raw
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node, seen = target, seen + 1
        return node

    def operation(self, op: Operation) -> Mapping[str, Any]:
        item = self.raw["paths"][spec_path(op)]
        result: Mapping[str, Any] = item[op.method.lower()]
        return result

    def operation_by_id(self, operation_id: str) -> tuple[str, str, Mapping[str, Any]]:
        for path, item in self.raw["paths"].items():
            for method, definition in item.items():
                if (
                    isinstance(definition, Mapping)
                    and definition.get("operationId") == operation_id
                ):
                    return method.upper(), path, definition
        raise KeyError(operation_id)

    def labels(self) -> set[str]:
        methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
        return {
            f"{method.upper()} {path}"
            for path, item in self.raw["paths"].items()
            for method in item
            if method in methods
        }

    # examples

    def request_example(self, op: Operation) -> Any:
        """The request body example of the operation's JSON body (``None`` without a body)."""
        body = self.resolve(self.operation(op).get("requestBody"))
        if not body:
            return None
        media = body.get("content", {}).get("application/json", {})
        if "example" in media:
            return media["example"]
        for example in (media.get("examples") or {}).values():
            example = self.resolve(example)
            if isinstance(example, Mapping) and "value" in example:
                return example["value"]
        return None

    def request_schema(self, op: Operation) -> Mapping[str, Any]:
        body = self.resolve(self.operation(op).get("requestBody")) or {}
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        resolved: Mapping[str, Any] = self.resolve(schema)
        return resolved

    def property_ref(self, op: Operation, name: str) -> str | None:
        """The component a top-level body property refers to (``Email``, ``Slug``…), if any."""
        prop = self.request_schema(op).get("properties", {}).get(name, {})
        ref = prop.get("$ref") if isinstance(prop, Mapping) else None
        return str(ref).rsplit("/", 1)[-1] if ref else None

    def parameter_example(self, op: Operation, name: str) -> Any:
        definition = self.operation(op)
        item = self.raw["paths"][spec_path(op)]
        for raw in list(definition.get("parameters", [])) + list(item.get("parameters", [])):
            param = self.resolve(raw)
            if param.get("name") == name:
                if "example" in param:
                    return param["example"]
                schema = self.resolve(param.get("schema", {}))
                examples = schema.get("examples") or []
                return examples[0] if examples else None
        return None

    def response_schema_name(self, op: Operation, status: str) -> str | None:
        response = self.resolve(self.operation(op).get("responses", {}).get(status))
        schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        return str(ref).rsplit("/", 1)[-1] if ref else None

    def enum_of(self, component: str) -> list[Any]:
        schema = self.raw["components"]["schemas"][component]
        return list(schema.get("enum", []))

    # links

    def links(self) -> Iterator[Link]:
        """Every OpenAPI link: from an operation's response to another operation."""
        for path, item in self.raw["paths"].items():
            for method, definition in item.items():
                if not isinstance(definition, Mapping) or "responses" not in definition:
                    continue
                for status, response in definition["responses"].items():
                    response = self.resolve(response)
                    for name, link in (response.get("links") or {}).items():
                        link = self.resolve(link)
                        yield Link(
                            name=name,
                            source=f"{method.upper()} {path}",
                            source_id=str(definition.get("operationId")),
                            status=str(status),
                            target_id=str(link["operationId"]),
                            parameters=dict(link.get("parameters") or {}),
                        )

    # problem codes

    def problem_codes(self) -> set[str]:
        problem = self.raw["components"]["schemas"]["Problem"]
        return set(problem["properties"]["code"].get("enum", []))

    def codes_for(self, op_label: str, status: int) -> set[str]:
        """The problem codes the spec documents for ``status`` on the operation ``op_label``.

        They are the backticked codes in the description of the documented response (every
        error response is a ``components/responses`` entry naming its codes). An undocumented
        status (405, 500) may carry any code of the ``Problem.code`` enum.
        """
        method, _, path = op_label.partition(" ")
        definition = self.raw["paths"].get(path, {}).get(method.lower())
        every = self.problem_codes()
        if not definition:
            return every
        responses = definition.get("responses", {})
        response = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX")
        if response is None:
            return every
        described = set(_CODE.findall(str(self.resolve(response).get("description", ""))))
        return (described & every) or every


@dataclass(frozen=True)
class Link:
    name: str
    source: str  # label of the operation whose response holds the link
    source_id: str
    status: str
    target_id: str
    parameters: dict[str, str]  # target parameter -> runtime expression


@cache
def local_document() -> Document:
    """The spec the server was generated from (``generated/openapi.json``), as it is served."""
    from server.app import load_spec_document

    return Document(load_spec_document())


# ── auth rules ────────────────────────────────────────────────────────────────────────────────

PASS = "pass"


@dataclass(frozen=True)
class Expectation:
    """What the spec says a caller gets: ``pass`` (the request is served), or a refusal."""

    outcome: str  # "pass", "401", "403" or "404"
    code: str | None = None  # the problem code of a refusal

    def __str__(self) -> str:
        return self.outcome if self.code is None else f"{self.outcome} {self.code}"


def rank(role: str) -> int:
    return WORKSPACE_ROLES.index(role)


def expected(op: Operation, caller: Any) -> Expectation:
    """The answer ``caller`` must get from ``op`` according to its security and least role.

    ``caller`` describes a credential: ``kind`` (none, invalid, session, pat, api_key),
    ``invalid_code`` (401 code of an invalid credential), ``superadmin``, ``scopes`` (a PAT's),
    ``role`` (its role in the request's workspace, None for a non-member or a foreign API key).
    """
    if is_public(op):
        return Expectation(PASS)
    optional = () in op.security
    if caller.kind == "none":
        return Expectation(PASS) if optional else Expectation("401", "unauthenticated")
    if caller.kind == "invalid":
        return Expectation("401", caller.invalid_code)
    least = op.min_role or "any"
    if least == "any":
        return scope_expectation(caller, scope_least_role(least, op.method))
    if least == "user":
        if caller.kind == "api_key":
            return Expectation("403", "forbidden")
        return scope_expectation(caller, scope_least_role(least, op.method))
    if least == "session":
        if caller.kind != "session":
            return Expectation("403", "session_required")
        return Expectation(PASS)
    if least == "superadmin":
        if caller.kind == "api_key" or not caller.superadmin:
            return Expectation("403", "forbidden")
        return scope_expectation(caller, scope_least_role(least, op.method))
    if least in WORKSPACE_ROLES:
        if WORKSPACE_PARAM not in path_params(op):
            # Item-level roles are the handler's (none in the spec yet); scopes are not.
            return scope_expectation(caller, least)
        if caller.role is None:
            return Expectation("404", "not_found")
        if rank(caller.role) < rank(least):
            return Expectation("403", "insufficient_role")
        return scope_expectation(caller, least)
    raise AssertionError(f"{label(op)}: unknown x-gantry-min-role {least!r}")


# The token scopes' caps and the roles come from the spec (``TokenScope``'s
# ``x-gantry-role-caps``, the ``Role`` enum), through ``server.vocabulary``.


def scope_cap(scopes: frozenset[str]) -> str | None:
    caps = [SCOPE_CAPS[s] for s in scopes if s in SCOPE_CAPS]
    return max(caps, key=rank) if caps else None


def scope_least_role(least: str, method: str) -> str:
    """The role a PAT's scopes must reach (spec: "Authentication"): a workspace operation's own
    least role; `admin` for superadmin work; else `read` to read and `write` to change."""
    if least in WORKSPACE_ROLES:
        return least
    if least == "superadmin":
        return "owner"
    return "viewer" if method in ("GET", "HEAD") else "editor"


def scope_expectation(caller: Any, least: str) -> Expectation:
    """A PAT whose scopes do not reach ``least`` is refused; no other credential has scopes."""
    if caller.kind == "pat":
        cap = scope_cap(caller.scopes)
        if cap is None or rank(cap) < rank(least):
            return Expectation("403", "scope_denied")
    return Expectation(PASS)
