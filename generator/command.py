"""`gantry generate`: produce the package (or take it from the cache), then write or compare it.

Only light modules are imported here, so that an unchanged spec is answered from the cache without
loading YAML, jinja2 or the validators: the whole output is cached under a key made of the spec's
bytes, its path as shown in the headers, the generator's code and the installed tool versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import marshal
import os
import sys
from pathlib import Path, PurePosixPath
from typing import TextIO

from .cache import Cache, code_digest, installed_digest, key
from .diagnostics import GenerationFailed, Located
from .output import Generated, compare_tree, write_tree


def display_path(spec: Path) -> str:
    """The spec path as headers and diagnostics show it: relative when possible, `/`-separated."""
    if spec.is_absolute():
        with contextlib.suppress(ValueError):  # another drive on Windows
            spec = Path(os.path.relpath(spec))
    return str(PurePosixPath(spec.as_posix()))


def generate(spec: Path, *, strict: bool = False, cache: Cache | None = None) -> Generated:
    """Every generated file, in memory; raises `GenerationFailed` with all problems."""
    cache = cache if cache is not None else Cache.from_environment()
    shown = display_path(spec)
    try:
        raw = spec.read_bytes()
    except OSError as exc:
        raise GenerationFailed(
            [Located(1, 1, "error", f"cannot read spec: {exc.strerror}")]
        ) from exc
    output_key = key(
        "output",
        hashlib.sha256(raw).hexdigest(),
        shown,
        code_digest(),
        installed_digest(),
        sys.version,
    )
    cached = cache.get_bytes("output", output_key)
    generated = _decode(cached) if cached is not None else None
    if generated is None:
        from .models import Worker  # light; forks before the heavy imports below

        worker = Worker.start()  # imports datamodel-code-generator on another core meanwhile
        try:
            from .pipeline import produce  # the heavy imports, only when there is work to do

            generated = produce(spec, shown, strict=False, cache=cache, raw=raw, worker=worker)
        finally:
            if worker is not None:
                worker.stop()
        cache.put_bytes("output", output_key, _encode(generated))
    if strict and generated.warnings:
        raise GenerationFailed(generated.warnings)
    return generated


def _encode(generated: Generated) -> bytes:
    # marshal: the entry is read back only by this Python (its version is part of the key).
    warnings = [(w.line, w.column, w.severity, w.message, w.file) for w in generated.warnings]
    entry = {"files": dict(generated.files), "warnings": warnings, "inputs": generated.inputs}
    return marshal.dumps(entry)


def _decode(raw: bytes) -> Generated | None:
    try:
        entry = marshal.loads(raw)
        files = {str(name): bytes(content) for name, content in entry["files"].items()}
        warnings = tuple(Located(*warning) for warning in entry["warnings"])
        inputs = tuple((str(path), str(digest)) for path, digest in entry["inputs"])
    except (EOFError, ValueError, TypeError, KeyError, AttributeError):
        return None  # a damaged entry is no entry
    if any(_sha256(Path(path)) != digest for path, digest in inputs):
        return None  # a file the spec references has changed since
    return Generated(files, warnings, inputs)


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


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
        generated = generate(Path(spec), strict=strict)
    except GenerationFailed as failure:
        _report(shown, failure.diagnostics, stderr, failed=True)
        return 1
    _report(shown, generated.warnings, stderr, failed=False)
    out_path = Path(out)
    if not check:
        write_tree(generated.files, out_path)
        print(f"generated {len(generated.files)} files in {out} from {shown}", file=stdout)
        return 0
    drift = compare_tree(generated.files, out_path)
    if not drift:
        print(f"{out} is up to date with {shown}", file=stdout)
        return 0
    print(f"{out} is not what {shown} generates; run `make generate`:", file=stderr)
    for kind, names in (("stale", drift.stale), ("missing", drift.missing), ("extra", drift.extra)):
        for name in names:
            print(f"  {kind}: {(out_path / name).as_posix()}", file=stderr)
    return 1


def _report(shown: str, located: tuple[Located, ...], stream: TextIO, *, failed: bool) -> None:
    for problem in sorted(located):
        print(problem.format(shown), file=stream)
    if failed:
        errors = sum(1 for p in located if p.severity == "error")
        warnings = len(located) - errors
        summary = f"{errors} error(s), {warnings} warning(s); nothing written"
        print(f"gantry generate: {summary}", file=stream)
