"""Generate a spec's package into the cache and import it under a name of its own.

The server never imports the generator: the package is made by running `gantry generate` in a
subprocess, into `<cache>/mock/<sha256 of the spec>/build/`, then copied to
`<cache>/mock/<sha>/gantry_mock_<sha>/`, where `<sha>` is a digest of the generated files. They
carry the `SPEC_SHA256` of the root file and of every file its `$ref`s brought in, so a changed
referenced file gets a package (and a module name) of its own within one process; and a newer
generator that writes other files gets a package of its own, never an older one. The cache is
`$GANTRY_CACHE_DIR`, else `.cache/gantry`; a temporary folder when the cache is off. The
generator's own cache makes an unchanged spec cost a fraction of a second.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType


class MockSpecError(Exception):
    """The spec could not be generated; the message holds the generator's diagnostics."""


def cache_root() -> Path:
    """`$GANTRY_CACHE_DIR`, `.cache/gantry`, or a fresh temporary folder when it is off."""
    configured = os.environ.get("GANTRY_CACHE_DIR")
    if configured == "":
        return Path(tempfile.mkdtemp(prefix="gantry-mock-"))
    return Path(configured) if configured else Path(".cache", "gantry")


def generate_package(spec: Path, root: Path | None = None) -> Path:
    """The folder of the package generated from `spec` (generated now if need be)."""
    try:
        root_digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise MockSpecError(f"cannot read {spec}: {exc.strerror}") from exc
    mock_root = (root or cache_root()) / "mock"
    build = mock_root / root_digest / "build"
    build.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gantry.cli", "generate", "--spec", str(spec)]
    result = subprocess.run(
        [*command, "--out", str(build)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MockSpecError(result.stderr.strip() or f"gantry generate failed for {spec}")
    digest = _package_digest(build)[:16]
    out = mock_root / digest / f"gantry_mock_{digest}"
    if not out.is_dir():
        _publish(build, out)
    return out


def _package_digest(folder: Path) -> str:
    """The sha256 of the files of the package generated in `folder`, names and bytes."""
    if not (folder / "__init__.py").is_file():
        raise MockSpecError(f"no package was generated in {folder}")
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _publish(build: Path, out: Path) -> None:
    """Copy the built package to `out` whole: another process sees it complete or not at all."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".gantry-", dir=out.parent))
    try:
        shutil.copytree(build, staging / out.name, ignore=shutil.ignore_patterns("__pycache__"))
        try:
            os.replace(staging / out.name, out)
        except OSError:
            if not out.is_dir():  # another process published it first, else a real failure
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def import_package(folder: Path) -> ModuleType:
    """Import the generated package in `folder` under the folder's name (once per process)."""
    name = folder.name
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None:
        raise MockSpecError(f"cannot import the package generated in {folder}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        for part in ("models", "operations", "routes"):
            importlib.import_module(f"{name}.{part}")
    except BaseException:
        for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[loaded]
        raise
    return module
