"""The generation pipeline: load → check → models → IR → render → format.

Reads like a table of contents; each step lives in its own module. `command` decides whether it
needs to run at all (an unchanged spec is answered from the cache) and writes the result.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from . import jsonpointer, lint, loader, validate
from .build_ir import build, with_model_classes
from .cache import Cache
from .diagnostics import Diagnostic, GenerationFailed, Located, Severity
from .formatting import format_files
from .ir import Api, Source
from .models import Models, ModelsJob, Worker
from .output import Generated
from .prepare import Prepared, prepare
from .render import header, render
from .resolve import Resolver
from .schemas import is_openapi_30, openapi_document, schemas_document


def produce(
    spec: Path,
    shown: str,
    *,
    strict: bool,
    cache: Cache,
    raw: bytes | None = None,
    worker: Worker | None = None,
) -> Generated:
    """Generate every file in memory; raise `GenerationFailed` with all problems on failure.

    `shown` is the spec path as the file headers name it; `raw` its bytes, if already read;
    `worker` a `models.Worker` to generate the models on another core (the caller stops it).
    """
    try:
        document = loader.loads(raw, spec) if raw is not None else loader.load(spec)
        resolver = Resolver(document.data)
        early = _early_prepare(document.data, resolver)
        job = _models_job(document, early, cache, worker) if early is not None else None
        problems = _check(document, resolver, cache)
        _stop_on_failures(problems, strict)
        prepared = early if early is not None else _prepare(document, resolver)
        job = job or _models_job(document, prepared, cache, worker)
        source = Source(shown, document.sha256)
        api = build(document.data, resolver, source, None, prepared)
        json_files = _json_files(api, document.data, prepared)
        models = _models(document, job)
    finally:
        if worker is not None:
            worker.stop()  # idle (models came from the cache) or done
    problems += [_locate(document, _model_warning(document.data, m)) for m in models.warnings]
    _stop_on_failures(problems, strict)
    api = with_model_classes(api, models.class_names)
    files = {**_render(api, models, cache), **json_files}
    return Generated(files, tuple(sorted(p for p in set(problems) if p.severity == "warning")))


_SCHEMAS = "/components/schemas"


def _locate(document: loader.Document, diagnostic: Diagnostic) -> Located:
    return document.source_map.locate_diagnostic(diagnostic)


def _check(document: loader.Document, resolver: Resolver, cache: Cache) -> list[Located]:
    """Every problem of the document: YAML, `$ref`s, our conventions, the OpenAPI schema."""
    diagnostics = lint.check_refs(document.data, resolver)
    refs_resolve = not diagnostics
    diagnostics += lint.lint(document.data, resolver)
    if refs_resolve:  # the validator cannot cope with a dangling $ref
        diagnostics += validate.validate(document.data, document.sha256, cache)
    return [*document.problems, *(_locate(document, d) for d in diagnostics)]


def _stop_on_failures(problems: list[Located], strict: bool) -> None:
    if any(p.severity == Severity.ERROR.value or strict for p in problems):
        raise GenerationFailed(sorted(set(problems)))


def _early_prepare(data: dict[str, Any], resolver: Resolver) -> Prepared | None:
    """The effective schemas before the checks, so models can start at once; None when the
    document is too broken for that (the checks will say why)."""
    try:
        return prepare(data, resolver)
    except Exception:
        return None


def _prepare(document: loader.Document, resolver: Resolver) -> Prepared:
    try:
        return prepare(document.data, resolver)
    except ValueError as exc:
        raise GenerationFailed([_locate(document, Diagnostic.error(_SCHEMAS, str(exc)))]) from exc


def _models_job(
    document: loader.Document, prepared: Prepared, cache: Cache, worker: Worker | None
) -> ModelsJob:
    version = _openapi_version(document.data)
    return ModelsJob(prepared.schemas, version, cache, aliases=prepared.aliases, worker=worker)


def _models(document: loader.Document, job: ModelsJob) -> Models:
    try:
        return job.result()
    except Exception as exc:  # datamodel-code-generator has limits of its own
        message = f"datamodel-code-generator failed: {type(exc).__name__}: {exc}"
        raise GenerationFailed([_locate(document, Diagnostic.error(_SCHEMAS, message))]) from exc


def _model_warning(data: dict[str, Any], message: str) -> Diagnostic:
    """A datamodel-code-generator warning, placed at the schema it names when it names one."""
    components = data.get("components")
    schemas = components.get("schemas") if isinstance(components, dict) else None
    names = schemas if isinstance(schemas, dict) else {}
    named = [word for word in re.findall(r"[\w.-]+", message) if word in names]
    pointer = jsonpointer.child(_SCHEMAS, named[0]) if named else _SCHEMAS
    return Diagnostic.warning(pointer, f"datamodel-code-generator: {message}")


def _openapi_version(data: dict[str, Any]) -> str:
    return str(data.get("openapi", ""))


def _render(api: Api, models: Models, cache: Cache) -> dict[str, bytes]:
    """The bytes of every generated Python file: templates, then ruff."""
    texts = render(api, models.source, cache.folder("jinja"))
    return {name: text.encode() for name, text in _formatted(texts).items()}


def _json_files(api: Api, data: dict[str, Any], prepared: Prepared) -> dict[str, bytes]:
    """`schemas.json` and `openapi.json`."""
    notice = {"notice": header(api), "sha256": api.source.sha256, "spec": api.source.path}
    schemas = schemas_document(
        prepared.schemas,
        openapi_30=is_openapi_30(_openapi_version(data)),
        generated=notice,
        unions=prepared.unions,
    )
    return {
        "schemas.json": schemas.encode(),
        "openapi.json": openapi_document(data, generated=notice).encode(),
    }


def _formatted(texts: dict[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="gantry-format-") as folder:
        for name, text in texts.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        format_files(Path(folder), sorted(texts), sort_imports=("models.py",))
        return {name: Path(folder, name).read_text(encoding="utf-8") for name in sorted(texts)}
