"""The effective component schemas: what `schemas.json` and `models.py` are made from.

The spec's `components/schemas` are not enough on their own:

- **Inline bodies** get names. A structured JSON body schema written inline in an operation is
  hoisted into the components under a name derived from where it is (`CreateNoteBody`,
  `CreateNote201Response`, `ProblemResponse` for `components/responses/Problem`), never a number.
- **Directions.** `readOnly` properties belong to responses only, `writeOnly` ones to requests
  only. A schema that has either (itself or through its references) keeps its name for the
  response shape, without its `writeOnly` properties; request bodies point at a request variant
  `<Name>Request`, without its `readOnly` properties (neither accepted nor required).
- **Discriminators on an allOf base.** A body, or a property anywhere, that names a base schema
  with a `discriminator` (`Pet`, extended by `Cat` and `Dog` through `allOf`) points at
  `<Base>Union`: a `oneOf` of the subtypes keyed by the discriminator, so a `Dog` is validated,
  and modelled, as a `Dog`. An `allOf` member naming the base is inheritance and stays.

`Prepared` says which schema each body uses; `build_ir` asks it for every media type.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from . import conventions, jsonpointer, names
from .resolve import RefError, Resolver, is_ref
from .schemas import SUBSCHEMA, SUBSCHEMA_LISTS, SUBSCHEMA_MAPS
from .walk import iter_operations

COMPONENT_SCHEMA_PREFIX = "#/components/schemas/"
REQUEST = "request"
RESPONSE = "response"
# pydantic warns about (and may one day refuse) fields in these namespaces of BaseModel.
_PROTECTED_PREFIXES = ("model_dump", "model_validate")
# A direction drops the properties flagged with its opposite.
_DROPPED_FLAG = {REQUEST: "readOnly", RESPONSE: "writeOnly"}


@dataclass
class Prepared:
    """The effective component schemas and the schema each body media type uses."""

    schemas: dict[str, Any]  # OpenAPI dialect, for datamodel-code-generator and schemas.json
    bodies: dict[str, Any] = field(default_factory=dict)  # media pointer -> schema to use
    unions: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)  # property name -> Python field name

    def body_schema(self, media_pointer: str, raw: Any) -> Any:
        """The schema a body media type at `media_pointer` is validated and modelled with."""
        return self.bodies.get(media_pointer, raw)

    def to_plain(self) -> dict[str, Any]:
        """Plain values (for the memo)."""
        unions = {name: [base, subtypes] for name, (base, subtypes) in self.unions.items()}
        return {
            "schemas": self.schemas,
            "bodies": self.bodies,
            "unions": unions,
            "aliases": self.aliases,
        }

    @classmethod
    def from_plain(cls, plain: dict[str, Any]) -> Prepared:
        """Undo `to_plain`."""
        unions = {name: (base, subtypes) for name, (base, subtypes) in plain["unions"].items()}
        return cls(plain["schemas"], plain["bodies"], unions, plain["aliases"])


def ref_name(schema: Any) -> str | None:
    """`Pet` for `{"$ref": "#/components/schemas/Pet"}`; None for anything else."""
    if not is_ref(schema):
        return None
    ref = str(schema["$ref"])
    if not ref.startswith(COMPONENT_SCHEMA_PREFIX):
        return None
    token = ref.removeprefix(COMPONENT_SCHEMA_PREFIX)
    return None if "/" in token else jsonpointer.unescape(unquote(token))


def component_ref(name: str) -> dict[str, str]:
    """`{"$ref": "#/components/schemas/<name>"}`, escaped."""
    return {"$ref": COMPONENT_SCHEMA_PREFIX + jsonpointer.escape(name)}


def prepare(document: dict[str, Any], resolver: Resolver) -> Prepared:
    """Hoist inline bodies, split directions, build discriminator unions."""
    return _Preparer(document, resolver).run()


@dataclass(frozen=True)
class _Media:
    direction: str
    pointer: str  # of the media type object
    media_type: str
    schema: Any
    base_name: str  # what a hoisted schema would be called, before any media suffix
    several: bool  # the content offers several JSON media types


class _Preparer:
    def __init__(self, document: dict[str, Any], resolver: Resolver) -> None:
        self.document = document
        self.resolver = resolver
        components = document.get("components")
        declared = components.get("schemas") if isinstance(components, dict) else None
        self.original: dict[str, Any] = dict(declared) if isinstance(declared, dict) else {}
        self.schemas: dict[str, Any] = dict(self.original)
        self.taken = set(self.schemas)
        self.prepared = Prepared(self.schemas)
        self.variants: dict[str, str] = {}
        self.union_bases: dict[str, bool] = {}
        self.directional = _directional(self.original)

    def run(self) -> Prepared:
        for name in self.original:
            if name in self.directional or self._names_a_union_base(self.original[name]):
                self.schemas[name] = self.transform(self.original[name], RESPONSE)
        for media in self._media():
            self.prepared.bodies[media.pointer] = self._body(media)
        self.prepared.aliases = _aliases(self.schemas)
        return self.prepared

    # -- bodies -----------------------------------------------------------------------------

    def _body(self, media: _Media) -> Any:
        schema = media.schema
        name = ref_name(schema)
        if name is not None and name in self.schemas:
            name = self._follow_aliases(name)
            if _discriminator(self.original.get(name)) and self._subtypes(name):
                return component_ref(self._union(name, media.direction))
            if media.direction == REQUEST and name in self.directional:
                return component_ref(self.variant(name))
            return schema
        if conventions.is_json(media.media_type) and _structured(schema):
            suffix = names.pascal_case(media.media_type) if media.several else ""
            hoisted = self._unique(media.base_name + suffix)
            self.schemas[hoisted] = self.transform(schema, media.direction)
            self.taken.add(hoisted)
            return component_ref(hoisted)
        return self.transform(schema, media.direction) if isinstance(schema, dict) else schema

    def _follow_aliases(self, name: str) -> str:
        """`PetAlias: {$ref: Pet}` names the same thing as `Pet`."""
        seen = {name}
        while True:
            target = ref_name(self.original.get(name))
            if target is None or target in seen or target not in self.original:
                return name
            if len(self.original[name]) != 1:
                return name
            seen.add(target)
            name = target

    def _media(self) -> list[_Media]:
        found: dict[str, _Media] = {}
        for site in iter_operations(self.document, self.resolver):
            operation = names.pascal_case(site.operation_id) or "Operation"
            if "requestBody" in site.operation:
                pointer = jsonpointer.child(site.pointer, "requestBody")
                body, at = self._deref(site.operation["requestBody"], pointer)
                base = self._owner_name(at, "requestBodies", "Body") or operation + "Body"
                self._collect(found, REQUEST, body, at, base)
            responses = site.operation.get("responses")
            if not isinstance(responses, dict):
                continue
            for status in sorted(responses):
                pointer = jsonpointer.join([*jsonpointer.split(site.pointer), "responses", status])
                response, at = self._deref(responses[status], pointer)
                named = self._owner_name(at, "responses", "Response")
                base = named or f"{operation}{names.pascal_case(str(status))}Response"
                self._collect(found, RESPONSE, response, at, base)
        return list(found.values())

    def _deref(self, value: Any, pointer: str) -> tuple[Any, str]:
        try:
            return self.resolver.deref(value, pointer)
        except RefError:
            return None, pointer

    @staticmethod
    def _owner_name(pointer: str, section: str, suffix: str) -> str | None:
        parts = jsonpointer.split(pointer)
        if len(parts) == 3 and parts[:2] == ["components", section]:
            return names.pascal_case(parts[2]) + suffix
        return None

    @staticmethod
    def _collect(
        found: dict[str, _Media], direction: str, owner: Any, pointer: str, base: str
    ) -> None:
        content = owner.get("content") if isinstance(owner, dict) else None
        if not isinstance(content, dict):
            return
        json_types = [m for m in content if conventions.is_json(m)]
        for media_type in sorted(content):
            media = content[media_type]
            if not isinstance(media, dict) or "schema" not in media:
                continue
            at = jsonpointer.child(jsonpointer.child(pointer, "content"), media_type)
            several = len(json_types) > 1
            found.setdefault(at, _Media(direction, at, media_type, media["schema"], base, several))

    def _unique(self, name: str) -> str:
        for candidate in (name, name + "Schema", name + "Inline"):
            if candidate not in self.taken:
                return candidate
        raise ValueError(f"cannot find a free schema name for {name!r}")

    # -- directions -------------------------------------------------------------------------

    def variant(self, name: str) -> str:
        """The request variant of a directional component schema (made on first use)."""
        if name not in self.variants:
            variant = self._unique(name + "Request")
            self.variants[name] = variant
            self.taken.add(variant)
            self.schemas[variant] = {}  # reserve the place: recursion may reach it again
            self.schemas[variant] = self.transform(self.original[name], REQUEST)
        return self.variants[name]

    def transform(self, schema: Any, direction: str) -> Any:
        """A copy of `schema` for one direction: flagged properties dropped, and (requests)
        references to directional schemas pointed at their request variants."""
        if not isinstance(schema, dict):
            return copy.deepcopy(schema)
        name = ref_name(schema)
        result: dict[str, Any] = {}
        if name is not None and self._is_union_base(name):
            result["$ref"] = component_ref(self._union(name, direction))["$ref"]
        elif name is not None and direction == REQUEST and name in self.directional:
            result["$ref"] = component_ref(self.variant(name))["$ref"]
        dropped = self._flagged(schema, _DROPPED_FLAG[direction])
        for key, value in schema.items():
            if key in result:
                continue
            if key == "properties" and isinstance(value, dict):
                result[key] = {
                    prop: self.transform(sub, direction)
                    for prop, sub in value.items()
                    if prop not in dropped
                }
            elif key == "required" and isinstance(value, list):
                result[key] = [prop for prop in value if prop not in dropped]
            elif key == "allOf" and isinstance(value, list):
                result[key] = [self._all_of_part(part, dropped, direction) for part in value]
            elif key in SUBSCHEMA:
                result[key] = self.transform(value, direction)
            elif key in SUBSCHEMA_LISTS and isinstance(value, list):
                result[key] = [self.transform(item, direction) for item in value]
            elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
                result[key] = {k: self.transform(v, direction) for k, v in value.items()}
            else:
                result[key] = copy.deepcopy(value)
        return result

    def _all_of_part(self, part: Any, dropped: set[str], direction: str) -> Any:
        """An allOf member: its `required` also loses what a sibling member flags. A member
        naming a discriminator base is inheritance: it keeps naming the base."""
        name = ref_name(part)
        if name is not None and self._is_union_base(name):
            kept = dict(part)
            if direction == REQUEST and name in self.directional:
                kept["$ref"] = component_ref(self.variant(name))["$ref"]
            return kept
        transformed = self.transform(part, direction)
        if isinstance(transformed, dict) and isinstance(transformed.get("required"), list):
            transformed["required"] = [p for p in transformed["required"] if p not in dropped]
        return transformed

    def _flagged(self, schema: dict[str, Any], flag: str, depth: int = 0) -> set[str]:
        """Property names flagged `flag` in `schema` and in its allOf members."""
        found: set[str] = set()
        properties = schema.get("properties")
        if isinstance(properties, dict):
            found |= {p for p, sub in properties.items() if self._is_flagged(sub, flag)}
        parts = schema.get("allOf")
        if isinstance(parts, list) and depth < 16:
            for part in parts:
                target = self._component(part) if is_ref(part) else part
                if isinstance(target, dict):
                    found |= self._flagged(target, flag, depth + 1)
        return found

    def _is_flagged(self, schema: Any, flag: str) -> bool:
        if not isinstance(schema, dict):
            return False
        if schema.get(flag) is True:
            return True
        target = self._component(schema) if is_ref(schema) else None
        return isinstance(target, dict) and target.get(flag) is True

    def _component(self, schema: Any) -> Any:
        name = ref_name(schema)
        return self.original.get(name) if name is not None else None

    # -- discriminator unions ---------------------------------------------------------------

    def _is_union_base(self, name: str) -> bool:
        """A schema with a discriminator that others extend through allOf."""
        if name not in self.union_bases:
            base = _discriminator(self.original.get(name)) is not None
            self.union_bases[name] = base and bool(self._subtypes(name))
        return self.union_bases[name]

    def _names_a_union_base(self, schema: Any) -> bool:
        """Whether a schema names a discriminator base other than as an allOf member."""
        _, refs = _scan(schema, skip_all_of_refs=True)
        return any(self._is_union_base(name) for name in refs)

    def _subtypes(self, base: str) -> dict[str, str]:
        """Discriminator value -> subtype schema name, for a base extended through allOf."""
        discriminator = _discriminator(self.original.get(base)) or {}
        mapping = discriminator.get("mapping")
        result: dict[str, str] = {}
        targets: set[str] = set()
        if isinstance(mapping, dict):
            for value, target in mapping.items():
                name = _mapping_target(str(target))
                if name in self.original and name != base:
                    result[str(value)] = name
                    targets.add(name)
        for name, schema in self.original.items():
            parts = schema.get("allOf") if isinstance(schema, dict) else None
            if name in targets or not isinstance(parts, list):
                continue
            if any(ref_name(part) == base for part in parts):
                result.setdefault(name, name)
        return dict(sorted(result.items()))

    def _union(self, base: str, direction: str) -> str:
        subtypes = self._subtypes(base)
        if direction == REQUEST and any(name in self.directional for name in subtypes.values()):
            subtypes = {value: self.variant(name) for value, name in subtypes.items()}
            union = base + "UnionRequest"
        else:
            union = base + "Union"
        for existing, (existing_base, existing_subtypes) in self.prepared.unions.items():
            if (existing_base, existing_subtypes) == (base, subtypes):
                return existing
        union = self._unique(union)
        property_name = str((_discriminator(self.original[base]) or {})["propertyName"])
        self.schemas[union] = {
            "oneOf": [component_ref(name) for name in subtypes.values()],
            "discriminator": {
                "propertyName": property_name,
                "mapping": {value: component_ref(name)["$ref"] for value, name in subtypes.items()},
            },
        }
        self.taken.add(union)
        self.prepared.unions[union] = (base, subtypes)
        return union


def _discriminator(schema: Any) -> dict[str, Any] | None:
    """The discriminator of a base schema (not of a oneOf/anyOf, which works as it is)."""
    if not isinstance(schema, dict) or "oneOf" in schema or "anyOf" in schema:
        return None
    discriminator = schema.get("discriminator")
    if isinstance(discriminator, dict) and isinstance(discriminator.get("propertyName"), str):
        return discriminator
    return None


def _mapping_target(target: str) -> str:
    """A mapping value is a reference or a bare schema name."""
    if target.startswith("#"):
        return ref_name({"$ref": target}) or ""
    return target


def _structured(schema: Any) -> bool:
    """Worth a model of its own: an object with properties, a composition, an enum, a map, or
    an array of such things."""
    if not isinstance(schema, dict) or is_ref(schema):
        return False
    if any(key in schema for key in ("properties", "allOf", "oneOf", "anyOf", "enum")):
        return True
    if isinstance(schema.get("additionalProperties"), dict) and schema["additionalProperties"]:
        return True
    items = schema.get("items")
    return is_ref(items) or _structured(items)


def _directional(schemas: dict[str, Any]) -> set[str]:
    """Component schemas with readOnly/writeOnly properties, themselves or through references."""
    direct: set[str] = set()
    references: dict[str, set[str]] = {}
    for name, schema in schemas.items():
        flagged, refs = _scan(schema)
        if flagged:
            direct.add(name)
        references[name] = refs
    result = set(direct)
    changed = True
    while changed:
        changed = False
        for name, refs in references.items():
            if name not in result and refs & result:
                result.add(name)
                changed = True
    return result


def _scan(schema: Any, *, skip_all_of_refs: bool = False) -> tuple[bool, set[str]]:
    """Whether a schema flags any property readOnly/writeOnly, and the components it names
    (optionally leaving out those named directly as allOf members)."""
    flagged = False
    refs: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        name = ref_name(node)
        if name is not None:
            refs.add(name)
        parts = node.get("allOf") if skip_all_of_refs else None
        if isinstance(parts, list):
            stack.extend(part for part in parts if ref_name(part) is None)
            node = {key: value for key, value in node.items() if key != "allOf"}
        properties = node.get("properties")
        if isinstance(properties, dict):
            for sub in properties.values():
                if isinstance(sub, dict) and (sub.get("readOnly") or sub.get("writeOnly")):
                    flagged = True
        for key, value in node.items():
            if key in SUBSCHEMA or key in SUBSCHEMA_LISTS:
                stack.append(value)
            elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
                stack.extend(value.values())
    return flagged, refs


def _aliases(schemas: dict[str, Any]) -> dict[str, str]:
    """Python names for properties pydantic reserves (`model_dump…`, `model_validate…`)."""
    found: set[str] = set()
    stack: list[Any] = list(schemas.values())
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            properties = node.get("properties")
            if isinstance(properties, dict):
                found |= {p for p in properties if p.startswith(_PROTECTED_PREFIXES)}
            for key, value in node.items():
                if key in SUBSCHEMA or key in SUBSCHEMA_LISTS:
                    stack.append(value)
                elif key in SUBSCHEMA_MAPS and isinstance(value, dict):
                    stack.extend(value.values())
    return {name: "field_" + names.snake_case(name) for name in sorted(found)}
