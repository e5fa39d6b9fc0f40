"""What the commands' parsers share: usage errors in one line, and ``-- CMD ARGS...`` kept whole.

``harness probe -- CMD``, ``harness probe-client -- CMD`` (and the fuzz and replay
commands) take the command of the program under test after ``--``: everything after the
first ``--`` is that command, options of its own included, and is never parsed here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

__all__ = ["OneLineErrors", "WithCommand", "add_command_parser", "integer", "port", "seconds"]


class OneLineErrors(argparse.ArgumentParser):
    """A usage error is one line on stderr and exit status 2 (no usage dump, no traceback).

    The top-level ``harness`` parser is one, so every command's parser is one too
    (``add_subparsers`` makes parsers of its parser's class).
    """

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        # As a subcommand, unknown options would go back to the top-level parser, whose
        # error would not name the command: refuse them here.
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class WithCommand(OneLineErrors):
    """One-line usage errors, and the words after the first ``--`` land whole in
    ``server_command`` (None without ``--``)."""

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        words = list(sys.argv[1:] if args is None else args)
        command: list[str] | None = None
        if "--" in words:
            at = words.index("--")
            words, command = words[:at], words[at + 1 :]
        parsed, extras = super().parse_known_args(words, namespace)
        parsed.server_command = command
        return parsed, extras


def add_command_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    parser_class: type[argparse.ArgumentParser] = WithCommand,
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """``subparsers.add_parser(name, **kwargs)``, the parser made of ``parser_class``."""
    default = subparsers._parser_class
    subparsers._parser_class = parser_class
    try:
        return subparsers.add_parser(name, **kwargs)
    finally:
        subparsers._parser_class = default


def integer(lowest: int, highest: int | None = None, *, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer from ``lowest`` (to ``highest``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if highest is None and value < lowest:
            raise argparse.ArgumentTypeError(f"must be >= {lowest}, not {value}")
        if highest is not None and not lowest <= value <= highest:
            raise argparse.ArgumentTypeError(f"must be in {lowest}..{highest}, not {value}")
        return value

    return parse


def port(lowest: int) -> Callable[[str], int]:
    """An argparse type: a TCP port from ``lowest`` (0: any free one) to 65535."""
    return integer(lowest, 65535, what="a port number")


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def seconds(*, zero: bool) -> Callable[[str], float]:
    """An argparse type: a duration in seconds, > 0 (or >= 0 with ``zero``), as a number of
    seconds or with a unit as load tools write it (``500ms``, ``30s``, ``2m``, ``1h``)."""

    def parse(text: str) -> float:
        number, scale = text.strip(), 1.0
        for unit in ("ms", "s", "m", "h"):  # "ms" before "m" and "s"
            if number.endswith(unit):
                number, scale = number[: -len(unit)], _UNITS[unit]
                break
        try:
            value = float(number) * scale
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"not a duration: {text!r} (seconds, or 500ms, 30s, 2m, 1h)"
            ) from None
        if not (value >= 0 if zero else value > 0) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"must be a duration {'>=' if zero else '>'} 0, not {text!r}")
        return value

    return parse
