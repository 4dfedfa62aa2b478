"""The ``emoforge`` command line.

Each capability registers a subcommand through a light ``cli`` module of its own
(argparse only); the module that does the work is imported when the subcommand runs,
so ``emoforge --help`` stays fast and needs no optional extra.
"""

from __future__ import annotations

import argparse
import sys

from emoforge import __version__
from emoforge.errors import UserError

# (module with register(subparsers)) for each capability, in the order --help lists them.
COMMAND_MODULES = (
    "emoforge.curation.cli",
    "emoforge.curation.footage.cli",
    "emoforge.labeling.cli",
    "emoforge.shards.cli",
    "emoforge.training.cli",
    "emoforge.dashboards.cli",
)


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line on stderr and exit status 2."""

    def error(self, message: str):  # noqa: D102 (argparse's hook)
        sys.stderr.write(f"error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = _Parser(
        prog="emoforge",
        description="Build EMO's talking-head corpus and train EMO from it.",
    )
    parser.add_argument("--version", action="version", version=f"emoforge {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
