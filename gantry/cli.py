"""The `gantry` command: `generate` drives the generator, `serve` the server.

Each side is imported only when its subcommand runs, so `gantry generate` works without the
server's dependencies being importable, and the reverse.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def _generate(args: argparse.Namespace) -> int:
    from generator.command import run

    return run(args.spec, args.out, check=args.check, strict=args.strict)


def _serve(args: argparse.Namespace) -> None:
    from server.cli import serve

    serve(args)


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

    serve = commands.add_parser("serve", help="run the API server")
    serve.set_defaults(handler=_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `gantry` console script."""
    args = build_parser().parse_args(argv)
    status = args.handler(args)
    raise SystemExit(status or 0)


if __name__ == "__main__":
    main()
