"""`make bench-generate`: time `gantry generate` against datamodel-code-generator alone.

For synthetic specs of 50, 400 and 2,000 operations (`specs.py`, written as YAML), each timing is
the median wall time of a few runs, every run a fresh subprocess (interpreter start-up and
imports included, as a spec author pays them):

- **dcg alone**: datamodel-code-generator's Python `generate()` on the same YAML file, pydantic v2
  models, its built-in formatter (the faster setting), written to a file;
- **cold**: a full `gantry generate` (validation, models, routes, operation table, schemas) with
  an empty cache folder and an empty output folder;
- **unchanged**: the same spec again, cache warm;
- **one op changed**: a spec where one operation gained a query parameter (a handler-facing part,
  no schema touched), new on every run, cache warm from the unchanged spec.

Wall time is what the targets are about; the CPU seconds (user + system, children included) are
printed beside it because they hardly move when other jobs share the machine. Prints a table and
writes `var/bench/generate.json`. `--sizes 50 400` and `--repeat 5` change the
defaults. Targets: cold <= 1.3 x dcg alone at every size; unchanged < 0.5 s; one
operation changed < 1 s. Then the mock of a 300-operation, 1,500-schema document
(`mock_startup`): generation time, start-up to the first answer and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO))

from bench.generate import mock_startup  # noqa: E402
from bench.generate.specs import build, resource_name, to_yaml  # noqa: E402

RESULTS = REPO / "var" / "bench" / "generate.json"
TARGET_RATIO = 1.3
TARGET_UNCHANGED = 0.5
TARGET_ONE_OP = 1.0
DCG_SCRIPT = """
import sys
from pathlib import Path
from datamodel_code_generator import generate
from datamodel_code_generator.enums import DataModelType, InputFileType
from datamodel_code_generator.format import Formatter, PythonVersion
generate(
    Path(sys.argv[1]),
    input_file_type=InputFileType.OpenAPI,
    output_model_type=DataModelType.PydanticV2BaseModel,
    target_python_version=PythonVersion.PY_311,
    formatters=[Formatter.BUILTIN],
    disable_timestamp=True,
    output=Path(sys.argv[2]),
)
"""


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(command: list[str], env: dict[str, str], cpu: list[float] | None = None) -> float:
    """Wall seconds of one run; its CPU seconds (with its own children's) go to `cpu`."""
    start, cpu_start = time.perf_counter(), _cpu()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{result.stderr[-2000:]}")
    if cpu is not None:
        cpu.append(_cpu() - cpu_start)
    return elapsed


def _gantry(spec: Path, out: Path, cache: Path) -> list[str]:
    del cache
    return [sys.executable, "-m", "gantry.cli", "generate", "--spec", str(spec), "--out", str(out)]


def _variant(operations: int, run: int) -> str:
    """The spec with one operation (a GET in the middle) given one more query parameter."""
    document = build(operations)
    middle = resource_name((operations // 6) // 2)
    path = document["paths"][f"/{middle.lower()}s/{{{middle.lower()}_id}}"]
    path["get"].setdefault("parameters", []).append(
        {"name": f"probe_{run}", "in": "query", "schema": {"type": "boolean"}}
    )
    return to_yaml(document)


def measure(operations: int, repeat: int, folder: Path) -> dict[str, Any]:
    """Every timing for one size."""
    spec = folder / f"spec_{operations}.yaml"
    spec.write_text(to_yaml(build(operations)), encoding="utf-8")
    base_env = {**os.environ, "PYTHONHASHSEED": "0"}
    runs: dict[str, list[float]] = {"dcg": [], "cold": [], "unchanged": [], "one_op": []}
    cpu: dict[str, list[float]] = {"dcg": [], "cold": []}
    for i in range(repeat):
        out = folder / f"dcg_{operations}_{i}.py"
        runs["dcg"].append(
            _timed([sys.executable, "-c", DCG_SCRIPT, str(spec), str(out)], base_env, cpu["dcg"])
        )
        cache, out_dir = folder / f"cache_{operations}_{i}", folder / f"out_{operations}_{i}"
        env = {**base_env, "GANTRY_CACHE_DIR": str(cache)}
        runs["cold"].append(_timed(_gantry(spec, out_dir, cache), env, cpu["cold"]))
        print(
            f"  {operations} ops, run {i + 1}: dcg {runs['dcg'][-1]:.2f} s, "
            f"cold {runs['cold'][-1]:.2f} s",
            file=sys.stderr,
        )
    warm_cache, warm_out = folder / f"cache_{operations}_0", folder / f"out_{operations}_0"
    env = {**base_env, "GANTRY_CACHE_DIR": str(warm_cache)}
    for _ in range(repeat):
        runs["unchanged"].append(_timed(_gantry(spec, warm_out, warm_cache), env))
    for i in range(repeat):
        changed = folder / f"spec_{operations}_changed_{i}.yaml"
        changed.write_text(_variant(operations, i), encoding="utf-8")
        runs["one_op"].append(_timed(_gantry(changed, warm_out, warm_cache), env))
    medians = {name: statistics.median(values) for name, values in runs.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu.items()}
    return {
        "operations": operations,
        "spec_bytes": spec.stat().st_size,
        "runs": runs,
        "cpu_runs": cpu,
        "median": medians,
        "cpu_median": cpu_medians,
        "ratio": medians["cold"] / medians["dcg"],
        "load_average": os.getloadavg(),
    }


def table(results: list[dict[str, Any]]) -> str:
    """The Markdown table the README quotes."""
    lines = [
        "| operations | dcg alone | gantry cold | ratio | CPU s (dcg / gantry) "
        "| unchanged | one op changed |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m, c = r["median"], r["cpu_median"]
        lines.append(
            f"| {r['operations']:,} | {m['dcg']:.2f} s | {m['cold']:.2f} s | "
            f"{r['ratio']:.2f}x | {c['dcg']:.1f} / {c['cold']:.1f} | "
            f"{m['unchanged']:.2f} s | {m['one_op']:.2f} s |"
        )
    return "\n".join(lines)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """One line per target: met or not, with the worst figure."""
    worst_ratio = max(r["ratio"] for r in results)
    worst_unchanged = max(r["median"]["unchanged"] for r in results)
    worst_one_op = max(r["median"]["one_op"] for r in results)

    def mark(ok: bool) -> str:
        return "met" if ok else "NOT met"

    return [
        f"cold <= {TARGET_RATIO}x dcg alone: {mark(worst_ratio <= TARGET_RATIO)} "
        f"(worst {worst_ratio:.2f}x)",
        f"unchanged < {TARGET_UNCHANGED} s: {mark(worst_unchanged < TARGET_UNCHANGED)} "
        f"(worst {worst_unchanged:.2f} s)",
        f"one operation changed < {TARGET_ONE_OP} s: {mark(worst_one_op < TARGET_ONE_OP)} "
        f"(worst {worst_one_op:.2f} s)",
    ]


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and report it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 400, 2000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="gantry-bench-generate-") as folder:
        for size in args.sizes:
            results.append(measure(size, args.repeat, Path(folder)))
        mock = mock_startup.measure(args.repeat, Path(folder))
    report = table(results)
    print(report)
    for line in verdicts(results):
        print(line)
    print(mock_startup.table(mock))
    for line in mock_startup.verdicts(mock):
        print(line)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "repeat": args.repeat,
                "dcg": "datamodel-code-generator generate() on the YAML file, pydantic v2, "
                "builtin formatter, in a fresh subprocess",
                "results": results,
                "table": report,
                "verdicts": verdicts(results),
                "mock": mock,
                "mock_table": mock_startup.table(mock),
                "mock_verdicts": mock_startup.verdicts(mock),
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {RESULTS.relative_to(REPO)}", file=sys.stderr)


if __name__ == "__main__":
    main()
