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
    return ModelsJob(component_schemas, openapi_version, cache, aliases=aliases).result()


class ModelsJob:
    """Models being made: answered from the cache, or by datamodel-code-generator in a worker.

    With a `Worker` (a forked process that has already imported datamodel-code-generator), the
    slowest step of generation runs on another core while the caller lints, validates and
    renders; `result()` waits for it. Without one, `result()` runs it in this process.
    """

    def __init__(
        self,
        component_schemas: dict[str, Any],
        openapi_version: str,
        cache: Cache,
        *,
        aliases: dict[str, str] | None = None,
        worker: Worker | None = None,
    ) -> None:
        self.schemas = component_schemas
        self.version = openapi_version
        self.aliases = aliases or {}
        self.cache = cache
        self.worker = None
        self._models: Models | None = None
        if not component_schemas:
            self._models = Models("from __future__ import annotations\n", {})
            return
        canonical = json.dumps([openapi_version, component_schemas, self.aliases], sort_keys=True)
        self.cache_key = key("models", installed_digest(), _CODE, canonical)
        cached = cache.get("models", self.cache_key)
        if cached is not None:
            entry = json.loads(cached)
            self._models = Models(entry["source"], entry["class_names"], tuple(entry["warnings"]))
        elif worker is not None and worker.submit(
            (component_schemas, openapi_version, self.aliases)
        ):
            self.worker = worker

    def result(self) -> Models:
        """The models (waiting for the worker if there is one); raises what the generator raised."""
        if self._models is not None:
            return self._models
        if self.worker is not None:
            models = self.worker.result()
        else:
            models = _run_generator(self.schemas, self.version, self.aliases)
        entry = {
            "source": models.source,
            "class_names": models.class_names,
            "warnings": list(models.warnings),
        }
        self.cache.put("models", self.cache_key, json.dumps(entry, sort_keys=True))
        self._models = models
        return models


class Worker:
    """A forked process that imports datamodel-code-generator at once, then generates models
    for the one job it is sent.

    Used when `GANTRY_GENERATE_PARALLEL=1` (the `gantry` command sets it unless told otherwise)
    and `fork` exists (Linux). A process that generates many times (tests, a library caller)
    does better without: it imports datamodel-code-generator once and keeps it, where each
    worker would import it again.
    """

    def __init__(self, process: Any, connection: Any) -> None:
        self.process = process
        self.connection = connection
        self.used = False

    @classmethod
    def start(cls) -> Worker | None:
        """A new worker, or None where forking is not available."""
        import multiprocessing
        import os

        if os.environ.get("GANTRY_GENERATE_PARALLEL", "0") != "1":
            return None
        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        context = multiprocessing.get_context("fork")
        parent, child = context.Pipe()
        process = context.Process(target=_serve_one_job, args=(child,), daemon=True)
        process.start()
        child.close()
        return cls(process, parent)

    def submit(self, job: tuple[Any, ...]) -> bool:
        """Send the job; False when the worker cannot take it (then run it in-process)."""
        if self.used:
            return False
        try:
            self.connection.send(job)
        except (OSError, ValueError):
            return False
        self.used = True
        return True

    def result(self) -> Models:
        """Wait for the worker's answer."""
        try:
            outcome, value = self.connection.recv()
        except EOFError:
            raise RuntimeError("the model worker died") from None
        finally:
            self.stop()
        if outcome == "error":
            raise RuntimeError(value)
        return value  # type: ignore[no-any-return]

    def stop(self) -> None:
        """End the worker, whether it was used or not."""
        try:
            if not self.used:
                self.connection.send(None)
            self.connection.close()
        except (OSError, ValueError):
            pass
        self.process.join(timeout=0.05)
        if self.process.is_alive():  # still importing: not needed any more
            self.process.kill()
            self.process.join(timeout=1)


def _serve_one_job(connection: Any) -> None:
    """The worker's body: import the generator while the parent parses, then run one job.

    It leaves with `os._exit`: a fork of a big process (a test runner) has nothing to clean up,
    and multiprocessing's own shutdown there can take long enough to matter.
    """
    import os

    try:
        import datamodel_code_generator  # noqa: F401  (the import is the point)

        job = connection.recv()
        if job is not None:
            try:
                connection.send(("ok", _run_generator(*job)))
            except Exception as exc:  # the parent reports it as the generator's failure
                connection.send(("error", f"{type(exc).__name__}: {exc}"))
        connection.close()
    except (EOFError, OSError):
        pass
    finally:
        os._exit(0)


def _run_generator(
    component_schemas: dict[str, Any], openapi_version: str, aliases: dict[str, str]
) -> Models:
    from datamodel_code_generator import generate
    from datamodel_code_generator.enums import DataModelType, InputFileType, NamingStrategy
    from datamodel_code_generator.format import PythonVersion

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
            formatters=[],  # ruff formats models.py with the rest (and sorts its imports)
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
