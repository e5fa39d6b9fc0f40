"""The ``harness`` command line.

Each subcommand lives in its own module under :mod:`harness.commands` and
exposes ``register(subparsers)``; this module only collects them. Modules whose name
starts with ``_`` hold what the commands share (:mod:`harness.commands._parsing`).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import harness.commands
from harness._extras import DISTRIBUTION, MissingExtra
from harness.commands._parsing import OneLineErrors


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="harness",
        description="Test, fuzz, capture and probe servers of the lpjson protocol.",
    )
    version = f"harness {harness.__version__} ({DISTRIBUTION})"
    parser.add_argument("--version", action="version", version=version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_info in sorted(pkgutil.iter_modules(harness.commands.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"harness.commands.{module_info.name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (2, one line on stderr), --help or --version (0)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        code: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    except MissingExtra as exc:  # a command or option whose extra is not installed
        print(f"harness: {exc}", file=sys.stderr)
        return 2
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
