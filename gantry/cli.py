"""The `gantry` command: `generate` and `scaffold` drive the generator, `serve`, `executor` and
`mock` the server.

Each side is imported only when its subcommand runs, so `gantry generate` works without the
server's dependencies being importable, and the reverse.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _generate(args: argparse.Namespace) -> int:
    import os

    from generator.command import run

    # One generation per process: datamodel-code-generator is imported in a forked worker and
    # runs on another core while the spec is linted, validated and rendered.
    os.environ.setdefault("GANTRY_GENERATE_PARALLEL", "1")

    return run(args.spec, args.out, check=args.check, strict=args.strict)


def _scaffold(args: argparse.Namespace) -> int:
    from generator.scaffold import run

    return run(args.spec, args.handlers)


def _serve(args: argparse.Namespace) -> None:
    from server.cli import serve

    serve(args)


def _executor(args: argparse.Namespace) -> None:
    from server.cli import run_executor

    run_executor(args)


def _mock(args: argparse.Namespace) -> int:
    import sys

    from werkzeug.serving import run_simple

    from server.mock.app import create_mock_app
    from server.mock.package import MockSpecError

    try:
        app = create_mock_app(args.spec)
    except MockSpecError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"mocking {args.spec} on http://{args.host}:{args.port}", file=sys.stderr)
    run_simple(args.host, args.port, app, threaded=True)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `gantry` command."""
    parser = argparse.ArgumentParser(prog="gantry", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    generate = commands.add_parser(
        "generate",
        help="generate the package (models, operations, schemas, routes) from the spec",
        description="Lint and validate the spec, then write the generated package.",
    )
    generate.add_argument("--spec", default="spec/openapi.yaml", help="the OpenAPI document")
    generate.add_argument("--out", default="generated", help="the package folder to write")
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; fail when the package is not what the spec generates",
    )
    generate.add_argument("--strict", action="store_true", help="fail on warnings too")
    generate.set_defaults(handler=_generate)

    scaffold = commands.add_parser(
        "scaffold",
        help="write stub handlers (answering 501) for operations that have none",
        description=(
            "Create or extend one module per tag under --handlers with a stub for every "
            "operation without a handler; existing handlers are never touched."
        ),
    )
    scaffold.add_argument("--spec", default="spec/openapi.yaml", help="the OpenAPI document")
    scaffold.add_argument(
        "--handlers", default="server/handlers", help="the handler package folder"
    )
    scaffold.set_defaults(handler=_scaffold)

    serve = commands.add_parser("serve", help="run the API server")
    serve.add_argument("--host", help="bind address (GANTRY_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (GANTRY_PORT, default 8080)")
    serve.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    serve.set_defaults(handler=_serve)

    executor = commands.add_parser(
        "executor",
        help="execute queued runs without serving the API (beside or instead of gantry serve's)",
    )
    executor.add_argument(
        "--threads", type=int, help="runs executed at once (GANTRY_EXECUTOR_THREADS, default 2)"
    )
    executor.set_defaults(handler=_executor)

    mock = commands.add_parser(
        "mock",
        help="serve a mock of any OpenAPI document through the real runtime",
        description=(
            "Generate SPEC into the cache and serve it: requests are validated as the server "
            "validates them; answers are the documented examples or values synthesised from "
            "the schemas. `Prefer: code=404` and `Prefer: example=NAME` pick a response."
        ),
    )
    mock.add_argument("spec", help="the OpenAPI document (YAML or JSON)")
    mock.add_argument("--port", type=int, default=4010, help="port (default 4010)")
    mock.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    mock.set_defaults(handler=_mock)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `gantry` console script."""
    args = build_parser().parse_args(argv)
    status = args.handler(args)
    raise SystemExit(status or 0)


if __name__ == "__main__":
    main()
