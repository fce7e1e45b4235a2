"""pydantic v2 models of `components/schemas`, by datamodel-code-generator's Python API.

The generator gets the already-parsed schemas, not a file. Its output and the map from schema name
to class name (datamodel-code-generator renames: `Field` → `FieldModel`, `cms.v3.Error` →
`CmsV3Error`) are cached by the hash of the schemas and the generator's version.
"""

from __future__ import annotations

import ast
import json
import tempfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

from .cache import Cache, key

_MARKER = "# <gantry header>"


@dataclass(frozen=True)
class Models:
    """The body of `models.py` (no header yet) and the class generated for each component schema."""

    source: str
    class_names: dict[str, str]


def generate_models(
    component_schemas: dict[str, Any], openapi_version: str, cache: Cache
) -> Models:
    """Models for the component schemas, from the cache when the schemas have not changed."""
    if not component_schemas:
        return Models("from __future__ import annotations\n", {})
    canonical = json.dumps([openapi_version, component_schemas], sort_keys=True)
    cache_key = key("models", version("datamodel-code-generator"), canonical)
    cached = cache.get("models", cache_key)
    if cached is not None:
        entry = json.loads(cached)
        return Models(entry["source"], entry["class_names"])
    models = _run_generator(component_schemas, openapi_version)
    entry = {"source": models.source, "class_names": models.class_names}
    cache.put("models", cache_key, json.dumps(entry, sort_keys=True))
    return models


def _run_generator(component_schemas: dict[str, Any], openapi_version: str) -> Models:
    from datamodel_code_generator import DataModelType, InputFileType, PythonVersion, generate
    from datamodel_code_generator.enums import NamingStrategy
    from datamodel_code_generator.format import Formatter

    document = {
        "openapi": openapi_version,
        "info": {"title": "models", "version": "0"},
        "paths": {},
        "components": {"schemas": component_schemas},
    }
    with tempfile.TemporaryDirectory(prefix="gantry-models-") as folder:
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
            use_annotated=True,
            field_constraints=True,
            use_standard_collections=True,
            use_union_operator=True,
            use_double_quotes=True,
            use_schema_description=True,
            use_field_description=True,
            emit_model_metadata=metadata_path,
        )
        metadata = json.loads(metadata_path.read_text(encoding="utf-8"))
    if not isinstance(output, str):
        raise RuntimeError("datamodel-code-generator wrote several modules; expected one")
    source = output.split(_MARKER, 1)[-1].lstrip("\n")
    return Models(source, _class_names(source, metadata))


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
