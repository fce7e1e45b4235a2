"""`gantry generate`: spec → load → check → IR → render → format → write (or compare).

Reads like a table of contents; each step lives in its own module.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TextIO

from . import lint, loader, validate
from .build_ir import build
from .cache import Cache
from .diagnostics import Diagnostic, GenerationFailed, Located, Severity, has_failures
from .formatting import format_files
from .ir import Source
from .models import generate_models
from .output import compare_tree, write_tree
from .render import header, render
from .resolve import Resolver
from .schemas import is_openapi_30, schemas_document


@dataclass(frozen=True)
class Generated:
    """The bytes of every generated file, and the warnings met on the way."""

    files: dict[str, bytes]
    warnings: tuple[Located, ...]


def display_path(spec: Path) -> str:
    """The spec path as headers and diagnostics show it: relative when possible, `/`-separated."""
    if spec.is_absolute():
        with contextlib.suppress(ValueError):  # another drive on Windows
            spec = Path(os.path.relpath(spec))
    return str(PurePosixPath(spec.as_posix()))


def produce(spec: Path, *, strict: bool = False, cache: Cache | None = None) -> Generated:
    """Generate every file in memory; raise `GenerationFailed` with all problems on failure."""
    cache = cache if cache is not None else Cache.from_environment()
    document = loader.load(spec)
    data = document.data
    resolver = Resolver(data)

    diagnostics = lint.check_refs(data, resolver)
    refs_resolve = not diagnostics
    diagnostics += lint.lint(data, resolver)
    if refs_resolve:  # the validator cannot cope with a dangling $ref
        diagnostics += validate.validate(data, document.sha256, cache)
    located = sorted({*document.problems, *map(document.source_map.locate_diagnostic, diagnostics)})
    if document.problems or has_failures(diagnostics, strict=strict):
        raise GenerationFailed(located)

    source = Source(display_path(spec), document.sha256)
    openapi_version = str(data.get("openapi", ""))
    components = data.get("components") if isinstance(data.get("components"), dict) else {}
    component_schemas = components.get("schemas") if isinstance(components, dict) else None
    component_schemas = component_schemas if isinstance(component_schemas, dict) else {}
    try:
        models = generate_models(component_schemas, openapi_version, cache)
    except Exception as exc:  # datamodel-code-generator has its own limits
        pointer = "/components/schemas"
        message = f"datamodel-code-generator failed: {type(exc).__name__}: {exc}"
        raise GenerationFailed(
            [document.source_map.locate_diagnostic(Diagnostic.error(pointer, message))]
        ) from exc

    api = build(data, resolver, source, models.class_names)
    texts = render(api, models.source)
    files = {name: text.encode() for name, text in _formatted(texts).items()}
    generated = {"notice": header(api), "sha256": source.sha256, "spec": source.path}
    files["schemas.json"] = schemas_document(
        component_schemas, openapi_30=is_openapi_30(openapi_version), generated=generated
    ).encode()
    return Generated(files, tuple(d for d in located if d.severity == Severity.WARNING.value))


def _formatted(texts: dict[str, str]) -> dict[str, str]:
    with tempfile.TemporaryDirectory(prefix="gantry-format-") as folder:
        for name, text in texts.items():
            Path(folder, name).write_text(text, encoding="utf-8")
        format_files(Path(folder), sorted(texts))
        return {name: Path(folder, name).read_text(encoding="utf-8") for name in sorted(texts)}


def run(
    spec: str,
    out: str,
    *,
    check: bool = False,
    strict: bool = False,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    """The `gantry generate` command; returns the exit status."""
    shown = display_path(Path(spec))
    try:
        generated = produce(Path(spec), strict=strict)
    except GenerationFailed as failure:
        _report(shown, failure.diagnostics, stderr, failed=True)
        return 1
    _report(shown, generated.warnings, stderr, failed=False)
    out_path = Path(out)
    if check:
        drift = compare_tree(generated.files, out_path)
        if drift:
            print(f"{out} is not what {shown} generates; run `make generate`:", file=stderr)
            for kind, names in (
                ("stale", drift.stale),
                ("missing", drift.missing),
                ("extra", drift.extra),
            ):
                for name in names:
                    print(f"  {kind}: {(out_path / name).as_posix()}", file=stderr)
            return 1
        print(f"{out} is up to date with {shown}", file=stdout)
        return 0
    write_tree(generated.files, out_path)
    print(f"generated {len(generated.files)} files in {out} from {shown}", file=stdout)
    return 0


def _report(shown: str, located: tuple[Located, ...], stream: TextIO, *, failed: bool) -> None:
    for problem in sorted(located):
        print(problem.format(shown), file=stream)
    if failed:
        errors = sum(1 for p in located if p.severity == Severity.ERROR.value)
        warnings = len(located) - errors
        print(
            f"gantry generate: {errors} error(s), {warnings} warning(s); nothing written",
            file=stream,
        )
