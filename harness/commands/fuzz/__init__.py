"""``harness fuzz TARGET``: fuzz a user's implementation.

Each target lives in a module of this package that exposes
``register(subparsers)`` (like the top-level commands): ``decoder`` fuzzes a
user's decoder with atheris, ``server`` a live server with Hypothesis. A new
target is a new module here; this file only collects them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "fuzz",
        help="fuzz your own decoder or live server",
        description="Fuzz an lpjson implementation of your own (see docs/fuzzing.md).",
    )
    targets = parser.add_subparsers(dest="fuzz_target", metavar="TARGET", required=True)
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        module.register(targets)
