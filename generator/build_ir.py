"""Build the IR from a linted, fully resolvable document."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from . import conventions, jsonpointer, names
from .ir import (
    Api,
    JsonSchema,
    MediaBody,
    Operation,
    Parameter,
    RequestBody,
    Response,
    SecurityScheme,
    Source,
)
from .resolve import Resolver, is_ref
from .schemas import is_openapi_30, normalise
from .walk import (
    PATH_TEMPLATE,
    OperationSite,
    ParameterSite,
    iter_operations,
    parameters,
    security,
    security_alternatives,
)

COMPONENT_SCHEMA_PREFIX = "#/components/schemas/"
_LOCATION_ORDER = {"path": 0, "query": 1, "header": 2, "cookie": 3}
_DEFAULT_STYLE = {"path": "simple", "query": "form", "header": "simple", "cookie": "form"}


def build(
    document: dict[str, Any], resolver: Resolver, source: Source, model_names: Mapping[str, str]
) -> Api:
    """The `Api` the templates render."""
    builder = _Builder(document, resolver, model_names)
    info = document.get("info")
    title = info.get("title") if isinstance(info, dict) else None
    return Api(
        source=source,
        title=str(title or ""),
        base_path=builder.base_path,
        operations=tuple(builder.operation(site) for site in iter_operations(document, resolver)),
        security_schemes=builder.security_schemes(),
    )


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
        self, document: dict[str, Any], resolver: Resolver, model_names: Mapping[str, str]
    ) -> None:
        self.document = document
        self.resolver = resolver
        self.model_names = model_names
        self.openapi_30 = is_openapi_30(str(document.get("openapi", "")))
        self.base_path = base_path(document)

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
            min_role=min_role if isinstance(min_role, str) else None,
            parameters=self.parameters(params),
            request_body=self.request_body(site),
            responses=self.responses(site),
            is_list=conventions.pagination(site, params, self.resolver).conforms,
        )

    def parameters(self, params: list[ParameterSite]) -> tuple[Parameter, ...]:
        ordered = sorted(params, key=lambda p: (_LOCATION_ORDER.get(p.location, 9), p.name))
        return tuple(self.parameter(p) for p in ordered)

    def parameter(self, param: ParameterSite) -> Parameter:
        value = param.value
        style = str(value.get("style") or _DEFAULT_STYLE.get(param.location, "simple"))
        explode = value.get("explode")
        if "schema" in value:
            schema = self.schema(value["schema"])
        else:
            content = _mapping(value.get("content"))
            media = [content[m] for m in sorted(content) if isinstance(content[m], dict)]
            schema = self.schema(media[0].get("schema", {})) if media else {}
        return Parameter(
            name=param.name,
            python_name=names.identifier(param.name),
            location=param.location,
            required=param.location == "path" or value.get("required") is True,
            style=style,
            explode=explode if isinstance(explode, bool) else style == "form",
            schema=schema,
        )

    def request_body(self, site: OperationSite) -> RequestBody | None:
        if "requestBody" not in site.operation:
            return None
        body, _ = self.resolver.deref(site.operation["requestBody"], "")
        if not isinstance(body, dict):
            return None
        return RequestBody(required=body.get("required") is True, content=self.content(body))

    def responses(self, site: OperationSite) -> tuple[Response, ...]:
        declared = site.operation.get("responses")
        if not isinstance(declared, dict):
            return ()
        result = []
        for status in sorted(declared):
            response, _ = self.resolver.deref(declared[status], "")
            if not isinstance(response, dict):
                continue
            headers = _mapping(response.get("headers"))
            result.append(Response(str(status), self.content(response), tuple(sorted(headers))))
        return tuple(result)

    def content(self, owner: dict[str, Any]) -> tuple[MediaBody, ...]:
        content = owner.get("content")
        if not isinstance(content, dict):
            return ()
        bodies = []
        for media_type in sorted(content):
            media = content[media_type] if isinstance(content[media_type], dict) else {}
            raw = media.get("schema", {})
            bodies.append(MediaBody(media_type, self.schema(raw), self.model(media_type, raw)))
        return tuple(bodies)

    def model(self, media_type: str, schema: Any) -> str | None:
        if not (conventions.is_json(media_type) and is_ref(schema)):
            return None
        ref = str(schema["$ref"])
        token = ref.removeprefix(COMPONENT_SCHEMA_PREFIX)
        if token == ref or "/" in token:
            return None
        return self.model_names.get(jsonpointer.unescape(unquote(token)))

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
                )
            )
        return tuple(result)


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _optional_str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
