"""The `abr` console script: one subcommand per job.

Each package contributes its subcommands through a `register(subparsers)` function in its
own `cli` module; handlers import their heavy dependencies lazily so that `abr --help`
stays fast. Errors derived from :class:`abrstack.errors.AbrError` become one line on
stderr and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from abrstack import __version__
from abrstack.errors import AbrError

# Modules that define `register(subparsers)`; a module that is absent is skipped so
# that a partial checkout still runs the commands it has.
_COMMAND_MODULES = (
    "encoder.cli",
    "origin.cli",
    "edge.cli",
    "player_sim.cli",
    "player_sim.play_cli",
    "abrstack.demo",
    "abrstack.fleet",
    "steer.cli",
    "qoe.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="abr",
        description="abrstack: encode, serve, cache and play adaptive-bitrate video.",
    )
    parser.add_argument("--version", action="version", version=f"abr {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
                continue  # the module or its package is absent (e.g. a stale editable install)
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except AbrError as exc:
        print(f"abr {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"abr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
