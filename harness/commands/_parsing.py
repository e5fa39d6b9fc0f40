"""What the commands' parsers share: usage errors in one line, and ``-- CMD ARGS...`` kept whole.

``harness probe -- CMD``, ``harness probe-client -- CMD`` (and the fuzz and replay
commands) take the command of the program under test after ``--``: everything after the
first ``--`` is that command, options of its own included, and is never parsed here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

__all__ = ["OneLineErrors", "add_command_parser"]


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit status 2 (no usage dump, no traceback);
    the words after the first ``--`` land whole in ``server_command`` (None without ``--``)."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        command: list[str] | None = None
        if "--" in words:
            at = words.index("--")
            words, command = words[:at], words[at + 1 :]
        # As a subcommand, unknown options would go back to the top-level parser, whose
        # error prints the whole usage: refuse them here, in one line.
        parsed, extras = super().parse_known_args(words, namespace)
        parsed.server_command = command
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def add_command_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    parser_class: type[argparse.ArgumentParser] = OneLineErrors,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, **kwargs)``, the parser made of ``parser_class``."""
    default = subparsers._parser_class
    subparsers._parser_class = parser_class
    try:
        return subparsers.add_parser(name, **kwargs)
    finally:
        subparsers._parser_class = default
