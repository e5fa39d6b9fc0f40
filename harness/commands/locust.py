"""``harness locust path``: where the installed locustfile for lpjson is (docs/scale.md#locust)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness._extras import MissingExtra, installed

#: harness/load/locust.py, found without importing it (importing it needs locust).
LOCUSTFILE = Path(__file__).resolve().parent.parent / "load" / "locust.py"


def locustfile_path() -> Path:
    """The path of the lpjson locustfile (``harness.load.locust``)."""
    return LOCUSTFILE


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "locust",
        help="distributed load with Locust: print the lpjson locustfile's path",
        description="The lpjson locustfile for Locust (the `locust` extra); see docs/scale.md.",
    )
    sub = parser.add_subparsers(dest="locust_command", metavar="SUBCOMMAND", required=True)
    path_parser = sub.add_parser(
        "path",
        help="print the locustfile's path",
        description="Print the path of the lpjson locustfile, e.g. for "
        "`locust -f $(harness locust path) --host tcp://HOST:PORT` (add --master, or --worker "
        "--master-host MASTER, for a distributed run).",
    )
    path_parser.set_defaults(func=run_path)


def run_path(args: argparse.Namespace) -> int:
    print(locustfile_path())
    if not installed("locust"):  # the path is still right: say what running it needs
        print(f"harness: {MissingExtra('the locustfile', 'locust')}", file=sys.stderr)
    return 0
