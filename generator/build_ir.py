"""Build the IR from a linted, fully resolvable document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from . import conventions, jsonpointer, names
from .ir import (
    Api,
    Callback,
    JsonSchema,
    MediaBody,
    Operation,
    Parameter,
    RequestBody,
    Response,
    SecurityScheme,
    Shared,
    SharedRef,
    Source,
)
from .prepare import Prepared, prepare, ref_name
from .resolve import RefError, Resolver, is_ref, ref_pointer
from .schemas import is_openapi_30, normalise
from .walk import (
    HTTP_METHODS,
    PATH_TEMPLATE,
    OperationSite,
    ParameterSite,
    iter_operations,
    parameters,
    security,
    security_alternatives,
    security_scopes,
)

COMPONENT_SCHEMA_PREFIX = "#/components/schemas/"
_LOCATION_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}
_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}


def build(
    document: dict[str, Any],
    resolver: Resolver,
    source: Source,
    model_names: Mapping[str, str] | None,
    prepared: Prepared | None = None,
) -> Api:
    """The `Api` the templates render.

    With `model_names` None, `MediaBody.model` holds the component schema's name until
    `with_model_classes` puts the models' class names in (so the IR can be built while the
    models are still being generated).
    """
    prepared = prepared if prepared is not None else prepare(document, resolver)
    builder = _Builder(document, resolver, model_names, prepared)
    info = document.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    sites = list(iter_operations(document, resolver))
    return Api(
        source=source,
        title=str(title or ""),
        base_path=builder.base_path,
        operations=tuple(builder.operation(site) for site in sites),
        security_schemes=builder.security_schemes(),
        webhooks=builder.webhooks(),
        callbacks=tuple(callback for site in sites for callback in builder.callbacks(site)),
    )


def build_operations(
    document: dict[str, Any], resolver: Resolver, prepared: Prepared
) -> dict[str, tuple[list[Operation], list[Callback]]]:
    """The operations and callbacks of each path of `document`, by path; `MediaBody.model`
    holds schema names, as from `build` without model names."""
    builder = _Builder(document, resolver, None, prepared)
    groups: dict[str, tuple[list[Operation], list[Callback]]] = {}
    for site in iter_operations(document, resolver):
        operations, callbacks = groups.setdefault(site.path, ([], []))
        operations.append(builder.operation(site))
        callbacks.extend(builder.callbacks(site))
    return groups


def build_shared(
    document: dict[str, Any], resolver: Resolver, prepared: Prepared, refs: list[SharedRef]
) -> tuple[tuple[Parameter, ...], tuple[Response, ...]]:
    """The records `refs` name, each with its constant's name (`shared`), sorted by it; their
    `MediaBody.model` holds schema names, as from `build` without model names."""
    builder = _Builder(document, resolver, None, prepared)
    parameters: list[Parameter] = []
    responses: list[Response] = []
    for ref in sorted(set(refs)):
        pointer = jsonpointer.join(["components", ref.kind, ref.component])
        found, at = resolver.deref(jsonpointer.resolve(document, pointer), pointer)
        shared = builder.constant(ref)
        if ref.kind == "parameters" and isinstance(found, dict):
            parameters.append(replace(builder.parameter(ParameterSite(found, at)), shared=shared))
        elif ref.kind == "responses":
            response = builder.response(ref.status, found, at)
            if response is not None:
                responses.append(replace(response, shared=shared))
    return (
        tuple(sorted(parameters, key=_constant_name)),
        tuple(sorted(responses, key=_constant_name)),
    )


def _constant_name(record: Parameter | Response) -> str:
    return record.shared.name if record.shared is not None else ""


def with_model_classes(api: Api, class_names: Mapping[str, str]) -> Api:
    """`api` with each `MediaBody.model` (a schema name) replaced by its class name, or None."""

    def body(request_body: RequestBody | None) -> RequestBody | None:
        if request_body is None:
            return None
        return replace(request_body, content=_with_classes(request_body.content, class_names))

    operations = tuple(
        replace(
            op,
            request_body=body(op.request_body),
            responses=responses_with_model_classes(op.responses, class_names),
        )
        for op in api.operations
    )

    def outbound(callbacks: tuple[Callback, ...]) -> tuple[Callback, ...]:
        return tuple(
            replace(
                c,
                request_body=body(c.request_body),
                responses=responses_with_model_classes(c.responses, class_names),
            )
            for c in callbacks
        )

    return replace(
        api,
        operations=operations,
        webhooks=outbound(api.webhooks),
        callbacks=outbound(api.callbacks),
    )


def responses_with_model_classes(
    declared: tuple[Response, ...], class_names: Mapping[str, str]
) -> tuple[Response, ...]:
    """`declared` with each `MediaBody.model` (a schema name) replaced by its class name."""
    return tuple(replace(r, content=_with_classes(r.content, class_names)) for r in declared)


def _with_classes(
    bodies: tuple[MediaBody, ...], class_names: Mapping[str, str]
) -> tuple[MediaBody, ...]:
    return tuple(
        replace(b, model=class_names.get(b.model) if b.model is not None else None) for b in bodies
    )


_CONSTANT_PREFIXES = {"parameters": "PARAMETER_", "responses": "RESPONSE_"}


def constant_names(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    """The module-level constant each parameter and response component is written as, by
    (kind, name): `PARAMETER_WORKSPACE_ID`; a response's status is added where it is used
    (`RESPONSE_NOT_FOUND` + `_404`). Names that would clash are numbered in name order."""
    components = _mapping(document.get("components"))
    found: dict[tuple[str, str], str] = {}
    for kind, prefix in _CONSTANT_PREFIXES.items():
        taken: set[str] = set()
        for component in sorted(_mapping(components.get(kind))):
            base = prefix + (names.snake_case(component).upper() or "COMPONENT")
            name, number = base, 1
            while name in taken:
                number += 1
                name = f"{base}_{number}"
            taken.add(name)
            found[(kind, component)] = name
    return found


def base_path(document: dict[str, Any]) -> str:
    """The path part of the first server URL (variables at their defaults), without a final `/`."""
    servers = document.get("servers")
    if not isinstance(servers, list) or not servers or not isinstance(servers[0], dict):
        return ""
    server = servers[0]
    url = str(server.get("url", ""))
    variables = server.get("variables") if isinstance(server.get("variables"), dict) else {}

    def default(match: re.Match[str]) -> str:
        variable = variables.get(match.group(1)) if variables else None
        return str(variable.get("default", "")) if isinstance(variable, dict) else ""

    url = PATH_TEMPLATE.sub(default, url)
    path = urlsplit(url).path if "://" in url else url.split("?")[0]
    return path.rstrip("/")


def flask_rule(path: str) -> str:
    """`/files/{file-id}.{ext}` → `/files/<file_id>.<ext>`, with the safe Python names."""
    return PATH_TEMPLATE.sub(lambda match: f"<{names.identifier(match.group(1))}>", path)


class _Builder:
    def __init__(
        self,
        document: dict[str, Any],
        resolver: Resolver,
        model_names: Mapping[str, str] | None,
        prepared: Prepared,
    ) -> None:
        self.document = document
        self.resolver = resolver
        self.model_names = model_names
        self.prepared = prepared
        self.openapi_30 = is_openapi_30(str(document.get("openapi", "")))
        self.base_path = base_path(document)
        self.constants = constant_names(document)

    def operation(self, site: OperationSite) -> Operation:
        params = parameters(site, self.resolver)
        requirements, _ = security(site, self.document)
        min_role = site.operation.get(conventions.MIN_ROLE_KEY)
        path = self.base_path + site.path
        return Operation(
            operation_id=site.operation_id,
            tag=site.tag,
            handler_module=site.handler_module,
            handler_name=site.handler_name,
            method=site.method.upper(),
            path=path,
            rule=flask_rule(path),
            security=security_alternatives(requirements),
            scopes=security_scopes(requirements),
            min_role=min_role if isinstance(min_role, str) else None,
            parameters=self.parameters(params),
            request_body=self.request_body(site.operation, site.pointer),
            responses=self.responses(site.operation, site.pointer),
            is_list=conventions.pagination(site, params, self.resolver).conforms,
        )

    def parameters(self, params: list[ParameterSite]) -> tuple[Parameter, ...]:
        ordered = sorted(params, key=lambda p: (_LOCATION_ORDER.get(p.location, 9), p.name))
        return tuple(self.parameter(p) for p in ordered)

    def parameter(self, param: ParameterSite) -> Parameter:
        value = param.value
        style = str(value.get("style") or _DEFAULT_STYLE.get(param.location, "simple"))
        if "schema" not in value and any(map(conventions.is_json, _mapping(value.get("content")))):
            style = "json"  # described by JSON `content`: one JSON text, not a styled value
        explode = value.get("explode")
        schema = self.parameter_schema(value)
        return Parameter(
            name=param.name,
            python_name=names.identifier(param.name),
            location=param.location,
            required=param.location == "path" or value.get("required") is True,
            style=style,
            explode=explode if isinstance(explode, bool) else style == "form",
            schema=schema,
            shared=self.shared("parameters", param.ref, ""),
        )

    def request_body(self, operation: dict[str, Any], pointer: str) -> RequestBody | None:
        if "requestBody" not in operation:
            return None
        body, at = self.resolver.deref(operation["requestBody"], f"{pointer}/requestBody")
        if not isinstance(body, dict):
            return None
        return RequestBody(required=body.get("required") is True, content=self.content(body, at))

    def responses(self, operation: dict[str, Any], pointer: str) -> tuple[Response, ...]:
        declared = operation.get("responses")
        if not isinstance(declared, dict):
            return ()
        result = []
        for status in sorted(declared):
            at = jsonpointer.child(jsonpointer.child(pointer, "responses"), status)
            response = self.response(str(status), declared[status], at)
            if response is not None:
                result.append(response)
        return tuple(result)

    def response(self, status: str, declared: Any, pointer: str) -> Response | None:
        ref = declared["$ref"] if is_ref(declared) else None
        response, at = self.resolver.deref(declared, pointer)
        if not isinstance(response, dict):
            return None
        headers = _mapping(response.get("headers"))
        schemas: dict[str, JsonSchema] = {}
        required = []
        for name in sorted(headers):
            header, _ = self.resolver.deref(headers[name], "")
            header = _mapping(header)
            schemas[name] = self.parameter_schema(header)
            if header.get("required") is True:
                required.append(name)
        return Response(
            status=status,
            content=self.content(response, at),
            headers=tuple(sorted(headers)),
            header_schemas=schemas,
            required_headers=tuple(required),
            shared=self.shared("responses", ref, status),
        )

    def shared(self, kind: str, ref: str | None, status: str) -> Shared | None:
        """Where a record written as `ref` is written, when `ref` names a component of `kind`
        (its record is then the same wherever it is used)."""
        if ref is None:
            return None
        try:
            tokens = jsonpointer.split(ref_pointer(ref))
        except RefError:
            return None
        if len(tokens) != 3 or tokens[:2] != ["components", kind]:
            return None
        return self.constant(SharedRef(kind, tokens[2], status))

    def constant(self, ref: SharedRef) -> Shared | None:
        """The constant the record `ref` names is written as."""
        base = self.constants.get((ref.kind, ref.component))
        if base is None:
            return None
        suffix = "_" + re.sub(r"[^0-9A-Za-z]", "", ref.status).upper() if ref.status else ""
        return Shared(base + suffix, ref)

    def content(self, owner: dict[str, Any], pointer: str) -> tuple[MediaBody, ...]:
        content = owner.get("content")
        if not isinstance(content, dict):
            return ()
        bodies = []
        for media_type in sorted(content):
            media = content[media_type] if isinstance(content[media_type], dict) else {}
            at = jsonpointer.child(jsonpointer.child(pointer, "content"), media_type)
            raw = self.prepared.body_schema(at, media.get("schema", {}))
            bodies.append(
                MediaBody(
                    media_type=media_type,
                    schema=self.schema(raw),
                    model=self.model(media_type, raw),
                    examples=self.examples(media),
                    encoding=_encoding(media),
                )
            )
        return tuple(bodies)

    def examples(self, media: dict[str, Any]) -> dict[str, Any]:
        """Named example values of a media type (external ones are not fetched)."""
        found: dict[str, Any] = {}
        if "example" in media:
            found["example"] = media["example"]
        for name, example in sorted(_mapping(media.get("examples")).items()):
            try:
                value, _ = self.resolver.deref(example, "")
            except RefError:
                continue
            if isinstance(value, dict) and "value" in value:
                found[name] = value["value"]
        return found

    def model(self, media_type: str, schema: Any) -> str | None:
        name = ref_name(schema)
        if not conventions.is_json(media_type) or name is None:
            return None
        return name if self.model_names is None else self.model_names.get(name)

    def parameter_schema(self, value: dict[str, Any]) -> JsonSchema:
        """The schema of a parameter or header: `schema`, or that of its one `content` entry."""
        if "schema" in value:
            return self.schema(value["schema"])
        content = _mapping(value.get("content"))
        media = [content[m] for m in sorted(content) if isinstance(content[m], dict)]
        return self.schema(media[0].get("schema", {})) if media else {}

    def webhooks(self) -> tuple[Callback, ...]:
        hooks = _mapping(self.document.get("webhooks"))
        result = []
        for name in sorted(hooks):
            pointer = jsonpointer.child("/webhooks", name)
            result += self._outbound("webhook", name, None, None, hooks[name], pointer)
        return tuple(result)

    def callbacks(self, site: OperationSite) -> list[Callback]:
        declared = _mapping(site.operation.get("callbacks"))
        result = []
        for name in sorted(declared):
            pointer = jsonpointer.child(jsonpointer.child(site.pointer, "callbacks"), name)
            callback, pointer = self.resolver.deref(declared[name], pointer)
            for expression in sorted(_mapping(callback)):
                at = jsonpointer.child(pointer, expression)
                item = _mapping(callback)[expression]
                result += self._outbound("callback", name, site.operation_id, expression, item, at)
        return result

    def _outbound(
        self,
        kind: str,
        name: str,
        source: str | None,
        expression: str | None,
        path_item: Any,
        pointer: str,
    ) -> list[Callback]:
        path_item, pointer = self.resolver.deref(path_item, pointer)
        result = []
        for method in HTTP_METHODS:
            operation = _mapping(path_item).get(method)
            if not isinstance(operation, dict):
                continue
            at = jsonpointer.child(pointer, method)
            operation_id = operation.get("operationId")
            result.append(
                Callback(
                    kind=kind,
                    name=name,
                    source=source,
                    expression=expression,
                    method=method.upper(),
                    operation_id=operation_id if isinstance(operation_id, str) else None,
                    request_body=self.request_body(operation, at),
                    responses=self.responses(operation, at),
                )
            )
        return result

    def schema(self, schema: Any, depth: int = 0) -> JsonSchema:
        """Normalised, with every `$ref` pointing into `schemas.json` (others are inlined)."""
        return self._portable(normalise(schema, openapi_30=self.openapi_30), depth)  # type: ignore[no-any-return]

    def _portable(self, node: Any, depth: int) -> Any:
        if isinstance(node, list):
            return [self._portable(item, depth) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith(COMPONENT_SCHEMA_PREFIX) and depth < 32:
            target, _ = self.resolver.lookup(ref)
            inlined = self.schema(target, depth + 1)
            rest = {k: self._portable(v, depth) for k, v in node.items() if k != "$ref"}
            return {**inlined, **rest} if isinstance(inlined, dict) else inlined
        return {key: self._portable(value, depth) for key, value in node.items()}

    def security_schemes(self) -> tuple[SecurityScheme, ...]:
        components = self.document.get("components")
        schemes = components.get("securitySchemes") if isinstance(components, dict) else None
        if not isinstance(schemes, dict):
            return ()
        result = []
        for name in sorted(schemes):
            scheme, _ = self.resolver.deref(schemes[name], "")
            if not isinstance(scheme, dict):
                continue
            kind = str(scheme.get("type", ""))
            http_scheme = scheme.get("scheme")
            result.append(
                SecurityScheme(
                    name=name,
                    type=kind,
                    scheme=str(http_scheme).lower() if kind == "http" and http_scheme else None,
                    bearer_format=_optional_str(scheme.get("bearerFormat")),
                    location=_optional_str(scheme.get("in")) if kind == "apiKey" else None,
                    parameter_name=_optional_str(scheme.get("name")) if kind == "apiKey" else None,
                    open_id_connect_url=(
                        _optional_str(scheme.get("openIdConnectUrl"))
                        if kind == "openIdConnect"
                        else None
                    ),
                    scopes=_flow_scopes(scheme) if kind == "oauth2" else {},
                )
            )
        return tuple(result)


def _flow_scopes(scheme: dict[str, Any]) -> dict[str, str]:
    """Every scope an oauth2 scheme's flows offer, with its description, sorted."""
    scopes: dict[str, str] = {}
    for flow in _mapping(scheme.get("flows")).values():
        for name, description in _mapping(_mapping(flow).get("scopes")).items():
            scopes.setdefault(str(name), str(description))
    return dict(sorted(scopes.items()))


def _encoding(media: dict[str, Any]) -> dict[str, str]:
    """The `contentType` of each property's `encoding` entry (form and multipart bodies), by
    property name; entries without one are left out."""
    found: dict[str, str] = {}
    for name, entry in sorted(_mapping(media.get("encoding")).items()):
        content_type = _mapping(entry).get("contentType")
        if isinstance(content_type, str) and content_type.strip():
            found[str(name)] = content_type
    return found


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
