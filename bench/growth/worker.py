"""One worker's start-up, in the fresh interpreter it runs in: prints one JSON object.

``python -m bench.growth.worker --package DIR`` imports, in this order, the libraries every
document needs (pydantic warmed up, Flask, SQLAlchemy, jsonschema-rs), the generated package in
``DIR`` (``generated``: the server's own), the runtime, and then builds ``create_runtime_app``
over the package. ``--create-app VAR`` builds ``server.app.create_app`` instead (the server's
package, SQLite under ``VAR``) with the same stub guard and handlers. It reports the wall and CPU
seconds of the package's import and of the app factory, and the resident memory (``VmRSS``, MiB)
after each step, so the document's own share (its package, then what the factory built for it)
is a difference of two readings in one process. ``--calls FILE`` then sends each request of
``FILE`` (``bench.growth.calls``) through the app once; ``--write-calls FILE`` writes them first
(a warm-up run: it imports the synthesiser, which the measured runs never do).

The runtime imports the server's own models (``generated.models``) whatever the document, so
with another package they are in the runtime's share, not the document's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from types import ModuleType
from typing import Any


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Clock:
    """Wall and CPU seconds since the last reading."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def lap(self) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        lap = (wall - self.wall, cpu - self.cpu)
        self.wall, self.cpu = wall, cpu
        return lap


def _import_libraries() -> None:
    """What any generated package and the runtime import, so neither is charged with it."""
    import flask  # noqa: F401
    import jsonschema_rs  # noqa: F401
    import orjson  # noqa: F401
    import sqlalchemy.orm  # noqa: F401
    from pydantic import BaseModel

    class _Warm(BaseModel):  # the first model loads pydantic's schema machinery
        value: int

    del _Warm


def _import_package(where: str) -> ModuleType:
    if where == "generated":
        import generated
        import generated.models
        import generated.operations
        import generated.routes

        return generated
    from server.mock.package import import_package

    return import_package(Path(where))


def _factory(var_dir: Path | None, package: ModuleType) -> Callable[[], Any]:
    """The app factory to time, its imports done: ``create_app`` (storage under ``var_dir``)
    or ``create_runtime_app`` over ``package``."""
    from bench.growth.app import OpenGuard, create_runtime_app, stub_handlers

    if var_dir is None:
        return lambda: create_runtime_app(package)
    from server.app import create_app
    from server.config import Config

    config = Config(var_dir=var_dir, secret_key="bench-growth")
    return lambda: create_app(config, guard=lambda state: OpenGuard(), handlers=stub_handlers)


def _serve(app: Any, calls: list[dict[str, Any]]) -> dict[str, int]:
    """Send every call once; the number of answers by status."""
    client = app.test_client()
    statuses: dict[str, int] = {}
    for call in calls:
        response = client.open(
            call["target"],
            method=call["method"],
            headers=call["headers"],
            data=call["body"].encode() if call["body"] is not None else None,
        )
        key = str(response.status_code)
        statuses[key] = statuses.get(key, 0) + 1
        response.close()
    return dict(sorted(statuses.items()))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.growth.worker")
    parser.add_argument("--package", default="generated")
    parser.add_argument("--create-app", type=Path, metavar="VAR", default=None)
    parser.add_argument("--calls", type=Path, default=None)
    parser.add_argument("--write-calls", type=Path, default=None)
    args = parser.parse_args(argv)

    clock = _Clock()
    _import_libraries()
    libraries_rss = rss_mib()
    clock.lap()
    package = _import_package(args.package)
    import_s, import_cpu_s = clock.lap()
    package_rss = rss_mib()

    import logging

    logging.disable(logging.CRITICAL)
    factory = _factory(args.create_app, package)
    runtime_rss = rss_mib()
    clock.lap()
    app = factory()
    create_app_s, create_app_cpu_s = clock.lap()
    app_rss = rss_mib()

    schemas = json.loads(resources.files(package).joinpath("schemas.json").read_text("utf-8"))
    report: dict[str, Any] = {
        "operations": len(package.operations.OPERATIONS),
        "schemas": len(schemas.get("components", {}).get("schemas", {})),
        "model_classes": sum(
            isinstance(value, type) and value.__module__ == package.models.__name__
            for value in vars(package.models).values()
        ),
        "import_s": import_s,
        "import_cpu_s": import_cpu_s,
        "create_app_s": create_app_s,
        "create_app_cpu_s": create_app_cpu_s,
        "rss_mib": app_rss,
        # The document's own memory: its package, and what the factory built over it.
        "document_mib": (package_rss - libraries_rss) + (app_rss - runtime_rss),
    }
    if args.write_calls is not None:
        from bench.growth.calls import one_call_per_operation

        args.write_calls.write_text(json.dumps(one_call_per_operation(package)), encoding="utf-8")
    if args.calls is not None:
        calls = json.loads(args.calls.read_text(encoding="utf-8"))
        report["statuses"] = _serve(app, calls)
        report["served_rss_mib"] = rss_mib()
    report["peak_rss_mib"] = rss_mib("VmHWM")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
