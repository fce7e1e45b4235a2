"""The intermediate representation: exactly what the templates need, and nothing from raw dicts.

Names are already safe (see `names`), schemas already JSON Schema 2020-12 (see `schemas`),
everything is sorted. Fields mirror the dataclasses of the generated `operations.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JsonSchema = Mapping[str, Any] | bool


@dataclass(frozen=True)
class SecurityScheme:
    """A `components/securitySchemes` entry, flattened."""

    name: str
    type: str
    scheme: str | None  # http: `bearer`, `basic` (lower case)
    bearer_format: str | None
    location: str | None  # apiKey: `header`, `query` or `cookie`
    parameter_name: str | None  # apiKey: the header, query or cookie name
    open_id_connect_url: str | None  # openIdConnect
    scopes: Mapping[str, str]  # oauth2: every scope of its flows -> description


@dataclass(frozen=True, order=True)
class SharedRef:
    """A record that comes from one component, the same wherever it is used: a parameter of
    `components/parameters`, or a response of `components/responses` under one status."""

    kind: str  # "parameters" or "responses"
    component: str  # its name under `components/<kind>`
    status: str  # a response's status; "" for a parameter


@dataclass(frozen=True)
class Shared:
    """Where a record that comes from a component is written: once, as a module-level
    constant that every use refers to by name."""

    name: str  # the constant, e.g. RESPONSE_NOT_FOUND_404
    ref: SharedRef


@dataclass(frozen=True)
class Parameter:
    """One parameter in effect for an operation (path-item ones merged in)."""

    name: str
    python_name: str
    location: str
    required: bool
    style: str
    explode: bool
    schema: JsonSchema
    shared: Shared | None = None  # not a field of the generated record: where it is written


@dataclass(frozen=True)
class MediaBody:
    """One media type of a request or response body."""

    media_type: str
    schema: JsonSchema
    model: str | None  # the models.py class of a JSON body that is a component schema
    examples: Mapping[str, Any]  # name -> value; a lone `example` is named "example"
    # form and multipart bodies: property -> the `contentType` of its `encoding` entry
    encoding: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RequestBody:
    """An operation's request body."""

    required: bool
    content: tuple[MediaBody, ...]


@dataclass(frozen=True)
class Response:
    """One documented response."""

    status: str
    content: tuple[MediaBody, ...]
    headers: tuple[str, ...]
    header_schemas: Mapping[str, JsonSchema]
    required_headers: tuple[str, ...]
    shared: Shared | None = None  # not a field of the generated record: where it is written


@dataclass(frozen=True)
class Operation:
    """One operation, with its route and handler names."""

    operation_id: str
    tag: str | None
    handler_module: str
    handler_name: str
    method: str
    path: str
    rule: str
    security: tuple[tuple[str, ...], ...]
    scopes: tuple[Mapping[str, tuple[str, ...]], ...]  # per alternative of `security`
    min_role: str | None
    parameters: tuple[Parameter, ...]
    request_body: RequestBody | None
    responses: tuple[Response, ...]
    is_list: bool


@dataclass(frozen=True)
class Callback:
    """A request the API sends rather than serves: a webhook, or an operation's callback."""

    kind: str  # "webhook" or "callback"
    name: str  # the webhook's name, or the callback's name in its operation
    source: str | None  # the operationId that declares the callback
    expression: str | None  # the callback's URL expression, e.g. {$request.body#/url}
    method: str
    operation_id: str | None
    request_body: RequestBody | None
    responses: tuple[Response, ...]


@dataclass(frozen=True)
class Source:
    """The spec a package was generated from, as the file headers name it."""

    path: str  # as given on the command line, relative, with `/` separators
    sha256: str


@dataclass(frozen=True)
class Api:
    """Everything the templates render."""

    source: Source
    title: str
    base_path: str
    operations: tuple[Operation, ...]  # sorted by path, then method
    security_schemes: tuple[SecurityScheme, ...]  # sorted by name
    webhooks: tuple[Callback, ...] = ()  # sorted by name, then method
    callbacks: tuple[Callback, ...] = ()  # in operation order, then name, expression, method
