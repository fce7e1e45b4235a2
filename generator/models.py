"""pydantic v2 models of `components/schemas`, by datamodel-code-generator's Python API.

The generator gets the already-parsed schemas, not a file. Its output and the map from schema name
to class name (datamodel-code-generator renames: `Field` → `FieldModel`, `cms.v3.Error` →
`CmsV3Error`) are cached by the hash of the schemas and the generator's version.
"""

from __future__ import annotations

import ast
import json
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .cache import Cache, installed_digest, key, module_digest

_MARKER = "# <gantry header>"
_CODE = module_digest(__file__)  # the options below are part of every cache key


# String formats stay `str` in the models. The server validates requests against the schemas
# (JSON Schema semantics); pydantic's own readings of these formats disagree with them (EmailStr
# rejects reserved domains, AnyUrl appends "/", datetime rejects leap seconds, SecretStr hides
# passwords), so a model must never reject or rewrite what the schema accepted.
_PLAIN_STRING_FORMATS = tuple(
    f"string+{fmt}=string"
    for fmt in (
        "byte",
        "date",
        "date-time",
        "duration",
        "email",
        "hostname",
        "idn-email",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "iri",
        "iri-reference",
        "json-pointer",
        "password",
        "regex",
        "relative-json-pointer",
        "time",
        "uri",
        "uri-reference",
        "uri-template",
        "uuid",
    )
)


@dataclass(frozen=True)
class Models:
    """The body of `models.py` (no header yet), the class of each component schema, and what
    datamodel-code-generator warned about (constraints it had to drop)."""

    source: str
    class_names: dict[str, str]
    warnings: tuple[str, ...] = ()


def generate_models(
    component_schemas: dict[str, Any],
    openapi_version: str,
    cache: Cache,
    *,
    aliases: dict[str, str] | None = None,
) -> Models:
    """Models for the component schemas, from the cache when the schemas have not changed.

    `aliases` maps property names to the Python field names to use instead (for names pydantic
    reserves).
    """
    if not component_schemas:
        return Models("from __future__ import annotations\n", {})
    aliases = aliases or {}
    canonical = json.dumps([openapi_version, component_schemas, aliases], sort_keys=True)
    cache_key = key("models", installed_digest(), _CODE, canonical)
    cached = cache.get("models", cache_key)
    if cached is not None:
        entry = json.loads(cached)
        return Models(entry["source"], entry["class_names"], tuple(entry["warnings"]))
    models = _run_generator(component_schemas, openapi_version, aliases)
    entry = {
        "source": models.source,
        "class_names": models.class_names,
        "warnings": list(models.warnings),
    }
    cache.put("models", cache_key, json.dumps(entry, sort_keys=True))
    return models


def _run_generator(
    component_schemas: dict[str, Any], openapi_version: str, aliases: dict[str, str]
) -> Models:
    from datamodel_code_generator import generate
    from datamodel_code_generator.enums import DataModelType, InputFileType, NamingStrategy
    from datamodel_code_generator.format import Formatter, PythonVersion

    document = {
        "openapi": openapi_version,
        "info": {"title": "models", "version": "0"},
        "paths": {},
        "components": {"schemas": component_schemas},
    }
    with (
        tempfile.TemporaryDirectory(prefix="gantry-models-") as folder,
        warnings.catch_warnings(record=True) as caught,
    ):
        warnings.simplefilter("always")
        metadata_path = Path(folder, "metadata.json")
        output = generate(
            document,
            input_file_type=InputFileType.OpenAPI,
            output_model_type=DataModelType.PydanticV2BaseModel,
            target_python_version=PythonVersion.PY_311,
            formatters=[Formatter.BUILTIN],
            custom_file_header=_MARKER,
            disable_timestamp=True,
            enable_version_header=False,
            treat_dot_as_module=False,  # one module: `cms.v3.Error` becomes `CmsV3Error`
            naming_strategy=NamingStrategy.FullPath,  # inline models named by location, not Foo1
            strict_nullable=True,  # a required nullable field stays required and takes None
            set_default_enum_member=True,  # `role: Role = Role.operator`, not the bare string
            use_annotated=True,
            field_constraints=True,
            use_standard_collections=True,
            use_union_operator=True,
            use_double_quotes=True,
            use_schema_description=True,
            use_field_description=True,
            emit_model_metadata=metadata_path,
            type_mappings=list(_PLAIN_STRING_FORMATS),
            aliases=aliases or None,
        )
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if not isinstance(output, str):
        raise RuntimeError("datamodel-code-generator wrote several modules; expected one")
    source = output.split(_MARKER, 1)[-1].lstrip("\n")
    messages = sorted(
        {" ".join(str(w.message).split()) for w in caught if w.category is not DeprecationWarning}
    )
    return Models(source, _class_names(source, metadata), tuple(messages))


def _class_names(source: str, metadata: dict[str, Any]) -> dict[str, str]:
    """Schema name → class name, for the classes that really are defined at module level."""
    defined = {node.name for node in ast.parse(source).body if isinstance(node, ast.ClassDef)}
    names = {}
    for model in metadata.get("models", []):
        path = model.get("source_path") or []
        is_component = len(path) == 3 and path[:2] == ["components", "schemas"]
        if is_component and model.get("class_name") in defined:
            names[path[2]] = model["class_name"]
    return dict(sorted(names.items()))
