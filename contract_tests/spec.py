"""What the suite knows about the API, all of it read from the spec.

The operation table is ``generated.operations.OPERATIONS`` (what the server routes), or the
table of another generated package that ``serving`` puts in its place (a document that adds a
resource to Gantry's); the raw document (examples, links, response descriptions) is the one
the server serves. Nothing here names an operation: a new operation in the spec is picked up by
every part of the suite.

The auth rules below are the spec's own words turned into code (``info.description``,
"Authentication"): ``security: []`` is public; otherwise ``x-gantry-min-role`` is ``any`` (any
credential), ``user`` (a session or PAT, not an API key), ``session`` (the cookie only),
``superadmin``, or a workspace role for operations under ``/workspaces/{workspace_id}`` or on
an item a workspace owns (``x-gantry-resource``, ``x-gantry-owner``), where a non-member gets
404 "exactly as if it did not exist" and a member below the role 403. A workspace named in a
header (``X-Workspace-Id``) is a 404 to a non-member too; a credential of a scoped scheme
(``x-gantry-scope``) needs that scope, then the scheme's ``x-gantry-scope-role`` in the
workspace it acts in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import cache, cached_property
from types import ModuleType
from typing import Any

import generated.operations
from generated.operations import Operation
from server.vocabulary import API_KEY_ROLES as API_KEY_ROLES
from server.vocabulary import SCOPE_CAPS as SCOPE_CAPS
from server.vocabulary import WORKSPACE_ROLES as WORKSPACE_ROLES
from server.vocabulary import duration as duration

API_ROOT = "/api/v1"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WORKSPACE_PARAM = "workspace_id"  # the tenancy scope of workspace roles (spec: "Authentication")
_PATH_PARAM = re.compile(r"{([^}]+)}")
_CODE = re.compile(r"`([a-z_]+)`")
METHODS = ("get", "put", "post", "delete", "patch")

# ── operations ────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Api:
    """The operations under test: a generated package's operation table and security schemes,
    and the document it was generated from."""

    table: ModuleType  # the package's ``operations`` module
    document: Document


_served: list[Api] = []


def api() -> Api:
    """The operations under test: Gantry's, unless ``serving`` put others in their place."""
    if not _served:
        _served.append(Api(generated.operations, local_document()))
    return _served[-1]


@contextmanager
def serving(table: ModuleType, document: Document) -> Iterator[Api]:
    """Test the operations of ``table`` (generated from ``document``) for the block."""
    api()
    _served.append(Api(table, document))
    try:
        yield _served[-1]
    finally:
        _served.pop()


def operations() -> tuple[Operation, ...]:
    """Every operation the server routes, in the generated order (path, then method)."""
    found: tuple[Operation, ...] = api().table.OPERATIONS
    return found


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
    for op in operations():
        if op.operation_id == operation_id:
            return op
    raise KeyError(operation_id)


def by_label(text: str) -> Operation | None:
    for op in operations():
        if label(op) == text:
            return op
    return None


def is_public(op: Operation) -> bool:
    return not op.security or op.min_role == "public"


def accepts_session(op: Operation) -> bool:
    """Whether a cookie session is one of the operation's security alternatives."""
    return any(any(scheme_is_cookie(s) for s in alt) for alt in op.security)


def scheme_is_cookie(name: str) -> bool:
    scheme = api().table.SECURITY_SCHEMES.get(name)
    return scheme is not None and scheme.type == "apiKey" and scheme.location == "cookie"


def success_statuses(op: Operation) -> list[int]:
    return [int(r.status) for r in op.responses if r.status.isdigit() and r.status[0] == "2"]


def documented_statuses(op: Operation) -> set[str]:
    return {r.status for r in op.responses}


def is_list(op: Operation) -> bool:
    """The pagination convention, as the generator detected it (limit + cursor → items, next_cursor)."""
    return bool(op.is_list)


def list_operations() -> list[Operation]:
    return [op for op in operations() if is_list(op)]


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

    def definitions(self) -> Iterator[tuple[str, str, Mapping[str, Any]]]:
        """(METHOD, path, definition) of every operation of the document."""
        for path, item in self.raw["paths"].items():
            for method in METHODS:
                definition = item.get(method)
                if isinstance(definition, Mapping):
                    yield method.upper(), path, definition

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
        """The request body example of the operation's body (``None`` without a body)."""
        return self.example_of(self.operation(op))

    def body_media_type(self, definition: Mapping[str, Any]) -> str | None:
        """The media type the suite sends a body in: JSON when the operation takes it, else the
        first one it documents (``multipart/form-data`` for an upload)."""
        body = self.resolve(definition.get("requestBody"))
        content = (body or {}).get("content") or {}
        if "application/json" in content:
            return "application/json"
        return str(next(iter(content))) if content else None

    def _body_media(self, definition: Mapping[str, Any]) -> Mapping[str, Any]:
        body = self.resolve(definition.get("requestBody")) or {}
        media_type = self.body_media_type(definition)
        media: Mapping[str, Any] = body.get("content", {}).get(media_type, {}) if media_type else {}
        return media

    def example_of(self, definition: Mapping[str, Any]) -> Any:
        """The request body example of an operation's definition (``None`` without a body)."""
        media = self._body_media(definition)
        if not media:
            return None
        if "example" in media:
            return media["example"]
        for example in (media.get("examples") or {}).values():
            example = self.resolve(example)
            if isinstance(example, Mapping) and "value" in example:
                return example["value"]
        return None

    def request_schema(self, op: Operation) -> Mapping[str, Any]:
        return self.body_schema_of(self.operation(op))

    def body_schema_of(self, definition: Mapping[str, Any]) -> Mapping[str, Any]:
        resolved: Mapping[str, Any] = self.resolve(self._body_media(definition).get("schema", {}))
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

    def declares_example(self, op: Operation, name: str) -> bool:
        """Whether the parameter ``name`` of ``op`` declares an ``example`` of its own."""
        definition = self.operation(op)
        item = self.raw["paths"][spec_path(op)]
        for raw in list(definition.get("parameters", [])) + list(item.get("parameters", [])):
            param = self.resolve(raw)
            if param.get("name") == name:
                return "example" in param
        return False

    def item_identity(self, op: Operation) -> str | None:
        """The field of a list's items that names the item (its schema names the items' own
        resource, ``x-gantry-resource``), if one does."""
        response = self.resolve(self.operation(op).get("responses", {}).get("200"))
        page = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
        items = self.resolve(self.resolve(page).get("properties", {}).get("items", {}))
        ref = items.get("items", {}).get("$ref") if isinstance(items, Mapping) else None
        if not ref:
            return None
        name = str(ref).rsplit("/", 1)[-1]
        for field, prop in (self.resolve({"$ref": ref}).get("properties") or {}).items():
            if self.resource_of(prop) == name:
                return str(field)
        return None

    def response_schema_name(self, op: Operation, status: str) -> str | None:
        response = self.resolve(self.operation(op).get("responses", {}).get(status))
        schema = (response or {}).get("content", {}).get("application/json", {}).get("schema", {})
        ref = schema.get("$ref") if isinstance(schema, Mapping) else None
        return str(ref).rsplit("/", 1)[-1] if ref else None

    def enum_of(self, component: str) -> list[Any]:
        schema = self.raw["components"]["schemas"][component]
        return list(schema.get("enum", []))

    # ownership (``x-gantry-owner``, ``x-gantry-resource``)

    def owner_of(self, schema: Any) -> str | None:
        """``x-gantry-owner`` of a schema, or of a schema it extends through ``allOf``."""
        schema = self.resolve(schema)
        if not isinstance(schema, Mapping):
            return None
        if schema.get("x-gantry-owner"):
            return str(schema["x-gantry-owner"])
        for part in schema.get("allOf") or ():
            found = self.owner_of(part)
            if found:
                return found
        return None

    def resource_of(self, schema: Any) -> str | None:
        """The resource a value of this schema names (``x-gantry-resource``, on the schema or
        on one it refers to)."""
        for _ in range(32):
            if not isinstance(schema, Mapping):
                return None
            if schema.get("x-gantry-resource"):
                return str(schema["x-gantry-resource"])
            if "$ref" not in schema:
                return None
            schema = self.resolve({"$ref": schema["$ref"]})
        return None

    def owned_item(self, op: Operation) -> str | None:
        """On a path without ``{workspace_id}``: the first path parameter that names an item a
        workspace owns, whose workspace is then the request's (None on any other path)."""
        if WORKSPACE_PARAM in path_params(op):
            return None
        for p in op.parameters:
            if p.location != "path":
                continue
            resource = self.resource_of(p.schema)
            schema = {"$ref": f"#/components/schemas/{resource}"}
            if resource and self.owner_of(schema) == "workspace":
                return str(p.name)
        return None

    def named_resource(self, schema: Any) -> str | None:
        """The resource a value of this schema names, also through a nullable ``anyOf``
        (``prompt_id: anyOf [PromptId, null]``)."""
        found = self.resource_of(schema)
        if found or not isinstance(schema, Mapping):
            return found
        for part in schema.get("anyOf") or schema.get("oneOf") or ():
            found = self.resource_of(part)
            if found:
                return found
        return None

    def creator_of(self, resource: str) -> tuple[str, str] | None:
        """The operation that makes a ``resource`` (a POST whose 201, else 202, answer is the
        resource's schema, or extends it), and the runtime expression of the new one's id (the
        property of the schema that names the resource itself)."""
        for status in ("201", "202"):
            for method, _, definition in self.definitions():
                if method != "POST":
                    continue
                response = self.resolve((definition.get("responses") or {}).get(status))
                media = ((response or {}).get("content") or {}).get("application/json") or {}
                if self._is_schema(media.get("schema"), resource):
                    pointer = self._id_property(resource)
                    if pointer is not None:
                        return str(definition["operationId"]), f"$response.body#/{pointer}"
        return None

    def _is_schema(self, schema: Any, name: str, depth: int = 0) -> bool:
        """Whether ``schema`` is the component ``name`` or extends it through ``allOf``."""
        if not isinstance(schema, Mapping) or depth > 8:
            return False
        if str(schema.get("$ref", "")).rsplit("/", 1)[-1] == name:
            return True
        resolved = self.resolve(schema)
        return any(self._is_schema(p, name, depth + 1) for p in resolved.get("allOf") or ())

    def _id_property(self, resource: str) -> str | None:
        schema = self.resolve({"$ref": f"#/components/schemas/{resource}"})
        for part in [schema, *(self.resolve(p) for p in schema.get("allOf") or ())]:
            for name, prop in (part.get("properties") or {}).items():
                if self.resource_of(prop) == resource:
                    return str(name)
        return None

    # the workspace a request acts in, besides its path

    def workspace_header(self, op: Operation) -> str | None:
        """A header parameter that names the workspace the request acts in (its schema is the
        one of the ``{workspace_id}`` path parameter): ``X-Workspace-Id``, which a user's
        credential sends and an API key, whose workspace is its own, leaves out."""
        id_schema = self._workspace_id_schema()
        for p in op.parameters:
            if p.location == "header" and id_schema is not None and p.schema == id_schema:
                return str(p.name)
        return None

    def _workspace_id_schema(self) -> Any:
        for op in operations():
            for p in op.parameters:
                if p.location == "path" and p.name == WORKSPACE_PARAM:
                    return p.schema
        return None

    # credentials scoped by their security scheme (``x-gantry-scope``)

    def required_scope(self, op: Operation) -> tuple[str, str | None] | None:
        """The scope every security alternative of ``op`` declares (``x-gantry-scope``), with
        the least workspace role it needs where the credential acts (``x-gantry-scope-role``);
        None when the operation's credentials are not scoped."""
        schemes = (self.raw.get("components") or {}).get("securitySchemes") or {}
        declared = {
            (
                self.resolve(schemes.get(name) or {}).get("x-gantry-scope"),
                self.resolve(schemes.get(name) or {}).get("x-gantry-scope-role"),
            )
            for alternative in op.security
            for name in alternative
        }
        if len(declared) != 1 or not all(op.security):
            return None
        scope, role = declared.pop()
        return (str(scope), str(role) if role else None) if scope else None

    def error_format(self, op: Operation) -> str | None:
        """The native error envelope the operation answers in (``x-gantry-error-format``)."""
        return self.error_format_at(op.method, spec_path(op))

    def error_format_at(self, method: str, path: str) -> str | None:
        definition = (self.raw["paths"].get(path) or {}).get(method.lower())
        found = definition.get("x-gantry-error-format") if isinstance(definition, Mapping) else None
        return str(found) if found else None

    # sessions (``x-gantry-session``)

    def session_lifetimes(self) -> tuple[timedelta, timedelta] | None:
        """(idle, absolute) lifetimes of a cookie session, as the cookie scheme declares them."""
        schemes = (self.raw.get("components") or {}).get("securitySchemes") or {}
        for scheme in schemes.values():
            declared = self.resolve(scheme).get("x-gantry-session")
            if isinstance(declared, Mapping):
                return duration(str(declared["idle"])), duration(str(declared["absolute"]))
        return None

    # links

    def links(self) -> Iterator[Link]:
        """Every OpenAPI link: from an operation's response to another operation."""
        return iter(self._links)

    @cached_property
    def _links(self) -> tuple[Link, ...]:
        return tuple(self._read_links())

    def _read_links(self) -> Iterator[Link]:
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


def in_workspace(op: Operation) -> bool:
    """Whether a request to ``op`` acts in a workspace: the path's ``workspace_id``, or the one
    that owns the item a flat path names (the document's ``x-gantry-resource`` declarations)."""
    return WORKSPACE_PARAM in path_params(op) or api().document.owned_item(op) is not None


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
    scoped = api().document.required_scope(op)
    if scoped is not None:
        return scoped_expectation(op, caller, *scoped)
    found = role_expectation(op, caller)
    if found.outcome == PASS and caller.role is None and api().document.workspace_header(op):
        return Expectation("404", "not_found")  # a workspace the caller cannot see
    return found


def role_expectation(op: Operation, caller: Any) -> Expectation:
    """What ``x-gantry-min-role`` and a PAT's scopes make of a valid credential."""
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
        if not in_workspace(op):
            raise AssertionError(
                f"{label(op)}: the spec asks for the {least} role but names no workspace to hold "
                f"it in (no {{{WORKSPACE_PARAM}}}, no item a workspace owns)"
            )
        if caller.role is None:
            return Expectation("404", "not_found")
        if rank(caller.role) < rank(least):
            return Expectation("403", "insufficient_role")
        return scope_expectation(caller, least)
    raise AssertionError(f"{label(op)}: unknown x-gantry-min-role {least!r}")


# The token scopes' caps and the roles come from the spec (``TokenScope``'s
# ``x-gantry-role-caps``, the ``Role`` enum), through ``server.vocabulary``.


def scoped_expectation(op: Operation, caller: Any, scope: str, least: str | None) -> Expectation:
    """A credential of a scoped security scheme (``x-gantry-scope``): the scope is its whole
    permission (a session has none), then the workspace it acts in (a header names it, or an
    API key's own) must be one it sees, with at least the role the scheme declares
    (``x-gantry-scope-role``)."""
    if scope not in caller.scopes:
        return Expectation("403", "scope_denied")
    if api().document.workspace_header(op) and caller.role is None:
        return Expectation("404", "not_found")
    if least is not None and (caller.role is None or rank(caller.role) < rank(least)):
        return Expectation("403", "insufficient_role")
    return Expectation(PASS)


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
