"""Generate a spec's package into the cache and import it under a name of its own.

The server never imports the generator: the package is made by running `gantry generate` in a
subprocess, into `<cache>/mock/<sha256 of the spec>/gantry_mock_<sha>/` (the cache is
`$GANTRY_CACHE_DIR`, else `.cache/gantry`; a temporary folder when the cache is off). The
generator's own cache makes an unchanged spec cost a fraction of a second.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
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
        digest = hashlib.sha256(spec.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise MockSpecError(f"cannot read {spec}: {exc.strerror}") from exc
    out = (root or cache_root()) / "mock" / digest / f"gantry_mock_{digest}"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "gantry.cli", "generate", "--spec", str(spec)]
    result = subprocess.run(
        [*command, "--out", str(out)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise MockSpecError(result.stderr.strip() or f"gantry generate failed for {spec}")
    return out


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
