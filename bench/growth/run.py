"""Start-up time and worker memory by document size, per operation, so their growth shows.

Three rows, each measured in fresh interpreters (one warm-up run that leaves bytecode caches and
writes the requests, then ``repeats`` runs, round-robin; medians):

* ``spec``: today's spec (``generated/``) through ``create_runtime_app``, the runtime as
  ``create_app`` wires it, with stub handlers;
* ``spec_create_app``: the same package through ``server.app.create_app`` itself (plus storage
  on a migrated SQLite database, bootstrap and the docs assets), with the same stubs;
* ``synthetic``: a synthetic document of 500 operations and 1,000 component schemas
  (``bench.generate.specs``), generated into a temporary package, through ``create_runtime_app``.

Per row: operations, schemas, the package's import and the app factory's time (wall and CPU
seconds), the worker's RSS after the factory and after one request per operation, and the
document's own memory (its package, and what the factory built over it, storage included for
``spec_create_app``, measured as differences in the worker). Divided by the operations, these
give seconds and MiB per operation; ``growth`` is each per-operation figure of ``synthetic`` over
the same of ``spec`` (both rows measured in this run): about 1 when start-up and memory grow
linearly with the document, well above when they grow faster. ``make bench`` puts the result
under ``growth`` in ``latest.json``; ``python -m bench.growth`` runs this part alone and writes
``var/bench/growth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.generate.specs import build, to_yaml

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "var" / "bench" / "growth.json"
# The generator's cache persists between runs (the first run generates the package cold).
GENERATOR_CACHE = ROOT / "var" / "bench" / "gantry-cache"
OPERATIONS = 500
SCHEMAS = 1000
PACKAGE = f"bench_synthetic_{OPERATIONS}"
# Figures whose medians are reported, and which of them are divided by the operations.
_FIGURES = (
    "import_s",
    "import_cpu_s",
    "create_app_s",
    "create_app_cpu_s",
    "rss_mib",
    "document_mib",
    "served_rss_mib",
    "peak_rss_mib",
)
_PER_OPERATION = ("import_s", "import_cpu_s", "create_app_s", "create_app_cpu_s", "document_mib")


def generate_synthetic(folder: Path) -> Path:
    """Write the synthetic document and ``gantry generate`` it into ``folder``; the package."""
    spec = folder / f"synthetic_{OPERATIONS}_{SCHEMAS}.yaml"
    spec.write_text(to_yaml(build(OPERATIONS, SCHEMAS)), encoding="utf-8")
    out = folder / PACKAGE
    env = {**os.environ, "GANTRY_CACHE_DIR": str(GENERATOR_CACHE)}
    command = [sys.executable, "-m", "gantry.cli", "generate", "--spec", str(spec)]
    done = subprocess.run(
        [*command, "--out", str(out)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(f"gantry generate failed on the synthetic document:\n{done.stderr}")
    return out


def _worker(args: list[str], pycache: Path) -> dict[str, Any]:
    """One run of ``bench.growth.worker`` in a fresh interpreter (bytecode caches on, under
    ``pycache``, as on a deployed server)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONPYCACHEPREFIX": str(pycache)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    out = subprocess.run(
        [sys.executable, "-m", "bench.growth.worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if out.returncode != 0:
        raise RuntimeError(f"bench.growth.worker {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return report


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    first = runs[0]
    row: dict[str, Any] = {
        "operations": first["operations"],
        "schemas": first["schemas"],
        "model_classes": first["model_classes"],
        "runs": len(runs),
    }
    for figure in _FIGURES:
        row[figure] = round(statistics.median(run[figure] for run in runs), 4)
    row["per_operation"] = {
        figure: round(row[figure] / row["operations"], 6) for figure in _PER_OPERATION
    }
    row["statuses"] = first["statuses"]  # the same requests every run
    return row


def measure(repeats: int, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every row (see the module docstring), and the growth from ``spec`` to ``synthetic``."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gantry-bench-growth-") as tmp:
        folder = Path(tmp)
        package = generate_synthetic(folder)
        log(f"  generated the synthetic document in {time.monotonic() - started:.1f} s")
        var = folder / "var"
        var.mkdir()
        rows = {
            "spec": ["--package", "generated"],
            "spec_create_app": ["--package", "generated", "--create-app", str(var)],
            "synthetic": ["--package", str(package)],
        }
        pycache = folder / "pycache"
        calls: dict[str, list[str]] = {}
        for name, args in rows.items():  # warm-up: bytecode, the database, the requests
            path = folder / f"calls_{name}.json"
            _worker([*args, "--write-calls", str(path)], pycache)
            calls[name] = ["--calls", str(path)]
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in rows}
        names = list(rows)
        for r in range(repeats):
            for name in names[r % len(names) :] + names[: r % len(names)]:
                runs[name].append(_worker([*rows[name], *calls[name]], pycache))
    result: dict[str, Any] = {name: _summary(found) for name, found in runs.items()}
    for name, row in result.items():
        if set(row["statuses"]) != {"204"}:  # a refusal skips the handler and what follows it
            log(f"  {name}: not every request reached its handler: {row['statuses']}")
    small, large = result["spec"]["per_operation"], result["synthetic"]["per_operation"]
    result["growth"] = {
        figure: round(large[figure] / small[figure], 2) if small[figure] else None
        for figure in _PER_OPERATION
    }
    result["seconds"] = round(time.monotonic() - started, 1)
    log(f"  growth: {repeats} fresh interpreters per row, {result['seconds']} s in all")
    return result


def table(result: dict[str, Any]) -> str:
    """The rows and their per-operation figures, then the growth."""
    lines = [
        "start-up and worker memory by document (medians; CPU seconds in brackets)",
        f"  {'':16s}{'ops':>5s}{'schemas':>8s}{'import s':>15s}{'create_app s':>15s}"
        f"{'RSS MiB':>9s}{'served':>8s}{'document':>10s}"
        f"{'create_app ms/op':>18s}{'MiB/op':>8s}",
    ]
    for name, row in result.items():
        if not isinstance(row, dict) or "operations" not in row:
            continue
        per_op = row["per_operation"]
        lines.append(
            f"  {name:16s}{row['operations']:5d}{row['schemas']:8d}"
            f"{row['import_s']:7.3f} ({row['import_cpu_s']:5.3f})"
            f"{row['create_app_s']:7.3f} ({row['create_app_cpu_s']:5.3f})"
            f"{row['rss_mib']:9.1f}{row['served_rss_mib']:8.1f}{row['document_mib']:10.1f}"
            f"{per_op['create_app_s'] * 1e3:18.3f}{per_op['document_mib']:8.3f}"
        )
    growth = result["growth"]
    lines.append(
        "  per operation, synthetic over spec (about 1: linear): "
        + ", ".join(f"{figure} {ratio}x" for figure, ratio in growth.items())
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.growth``: this part of ``make bench`` alone."""
    description = __doc__.splitlines()[0] if __doc__ else None
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=description)
    parser.add_argument("--repeat", type=int, default=3, help="measured runs per row")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the JSON")
    args = parser.parse_args(argv)
    result = measure(args.repeat)
    print(table(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0
