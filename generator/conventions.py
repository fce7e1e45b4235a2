"""Gantry's API conventions, shared by the linter (which enforces them) and the IR (which uses them).

The conventions profile is switched on by the spec itself: a document that uses
`x-gantry-min-role` anywhere, or says `x-gantry-conventions: true` at the top, is a Gantry spec,
and breaking a convention there is an error. Anyone else's document is not held to them: its
diagnostics are the real problems only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import jsonpointer
from .resolve import RefError, Resolver, contains_key
from .walk import OperationSite, ParameterSite

MIN_ROLE_KEY = "x-gantry-min-role"
CONVENTIONS_KEY = "x-gantry-conventions"  # `true` at the top level: opt in without roles
ROLES = (
    "public",
    "any",
    "user",
    "session",
    "superadmin",
    "viewer",
    "operator",
    "editor",
    "admin",
    "owner",
)
PAGE_PARAMETERS = ("cursor", "limit")
_LIST_OPERATION_ID = re.compile(r"list(?![a-z])")
_JSON_MEDIA = re.compile(r"^application/(?:[\w.+-]*\+)?json$")


def gantry_profile(document: dict[str, Any]) -> bool:
    """True when the document opts into the Gantry conventions (`x-gantry-conventions: true`,
    or `x-gantry-min-role` anywhere)."""
    return document.get(CONVENTIONS_KEY) is True or contains_key(document, MIN_ROLE_KEY)


def is_json(media_type: str) -> bool:
    """True for `application/json` and `application/*+json` (parameters such as charset ignored)."""
    return bool(_JSON_MEDIA.match(media_type.split(";")[0].strip().lower()))


@dataclass(frozen=True)
class Pagination:
    """Whether an operation is a list, and how it falls short of the pagination convention."""

    is_list: bool
    problems: tuple[tuple[str, str], ...]  # (pointer, message)

    @property
    def conforms(self) -> bool:
        """A list operation that follows the convention."""
        return self.is_list and not self.problems


def pagination(site: OperationSite, params: list[ParameterSite], resolver: Resolver) -> Pagination:
    """Classify `site` as a list (by operationId `list…` or by its envelope) and check it."""
    envelope = _success_json_schema(site, resolver)
    properties = _properties(envelope[0], resolver) if envelope else {}
    has_envelope = _is_array(properties.get("items"), resolver) and "next_cursor" in properties
    named_list = bool(_LIST_OPERATION_ID.match(str(site.operation.get("operationId", ""))))
    if not (named_list or (site.method == "get" and has_envelope)):
        return Pagination(False, ())
    problems = []
    query = {p.name for p in params if p.location == "query"}
    for name in PAGE_PARAMETERS:
        if name not in query:
            message = f"list operation {site.label} has no {name!r} query parameter"
            problems.append((site.pointer, message))
    if not has_envelope:
        pointer = envelope[1] if envelope else jsonpointer.child(site.pointer, "responses")
        message = (
            f"list operation {site.label} must return a JSON object with 'items' (an array) "
            "and 'next_cursor' in its 200 response"
        )
        problems.append((pointer, message))
    return Pagination(True, tuple(problems))


def _success_json_schema(site: OperationSite, resolver: Resolver) -> tuple[Any, str] | None:
    responses = site.operation.get("responses")
    if not isinstance(responses, dict) or "200" not in responses:
        return None
    pointer = jsonpointer.child(jsonpointer.child(site.pointer, "responses"), "200")
    try:
        response, pointer = resolver.deref(responses["200"], pointer)
    except RefError:
        return None
    content = response.get("content") if isinstance(response, dict) else None
    if not isinstance(content, dict):
        return None
    for media_type in sorted(content):
        media = content[media_type]
        if is_json(media_type) and isinstance(media, dict) and "schema" in media:
            media_pointer = jsonpointer.child(jsonpointer.child(pointer, "content"), media_type)
            return media["schema"], jsonpointer.child(media_pointer, "schema")
    return None


def _properties(schema: Any, resolver: Resolver, depth: int = 0) -> dict[str, Any]:
    """The properties of an object schema, through `$ref`s and `allOf`."""
    try:
        schema, _ = resolver.deref(schema, "")
    except RefError:
        return {}
    if not isinstance(schema, dict) or depth > 16:
        return {}
    merged: dict[str, Any] = {}
    for part in schema.get("allOf", []) if isinstance(schema.get("allOf"), list) else []:
        merged.update(_properties(part, resolver, depth + 1))
    if isinstance(schema.get("properties"), dict):
        merged.update(schema["properties"])
    return merged


def _is_array(schema: Any, resolver: Resolver) -> bool:
    try:
        schema, _ = resolver.deref(schema, "")
    except RefError:
        return False
    if not isinstance(schema, dict):
        return False
    kind = schema.get("type")
    return kind == "array" or (isinstance(kind, list) and "array" in kind) or "items" in schema
