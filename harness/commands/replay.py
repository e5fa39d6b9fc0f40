"""``harness replay FILE [HOST PORT | -- CMD ...]``: re-run a failure found by ``harness fuzz server``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Re-run the program of a replay file written by `harness fuzz server` (docs/live-fuzzing.md)
against HOST PORT, a server started with -- CMD ({host} and {port} replaced), or, with
neither, the target recorded in the file (its command, or its address). Prints FIXED and
exits 0 when every run passes; prints STILL FAILING and what failed, and exits 1, when one
fails. Exit status 2: a usage error, a file that is not a replay file, or a server that
cannot be started or reached.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from harness.commands._parsing import add_command_parser, seconds
    from harness.commands.fuzz.server import add_target_arguments

    parser = add_command_parser(
        subparsers,
        "replay",
        help="re-run a failure found by harness fuzz server: FIXED or STILL FAILING",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", type=Path, metavar="FILE", help="a replay file (.harness/failure-*.json)")
    add_target_arguments(parser)
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        metavar="N",
        help="run it N times; one failure is STILL FAILING (default 3)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds(zero=False),
        metavar="SECONDS",
        help="bound on every wait (default: the file's)",
    )
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"harness replay: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from harness.apps import get_app
    from harness.livefuzz.program import describe
    from harness.livefuzz.replay import load
    from harness.livefuzz.runner import Runner
    from harness.livefuzz.target import Target, parse_target, running
    from harness.probe.profiles import get_profile
    from harness.supervise import ServerStartError

    if args.runs < 1:
        return _usage("--runs must be >= 1")
    try:
        replay = load(args.file)
    except OSError as exc:
        return _usage(f"cannot read {args.file}: {exc.strerror or exc}")
    except ValueError as exc:
        return _usage(str(exc))
    try:
        app = get_app(replay.app)
        profile = get_profile(replay.profile)
    except ValueError as exc:
        return _usage(f"{args.file}: {exc}")
    target = parse_target(args.target, args.server_command)
    if isinstance(target, str):
        return _usage(target)
    if not args.target and args.server_command is None:
        if replay.command is not None:
            target = Target(command=replay.command)
        elif replay.host is not None and isinstance(replay.port, int):
            target = Target(host=replay.host, port=replay.port)
    timeout = args.timeout if args.timeout is not None else replay.timeout
    print(f"replaying {args.file} ({len(replay.steps)} steps) against {target}", file=sys.stderr)
    try:
        rss_limit = int(replay.rss_limit * (1 << 20))
        with running(target, app, rss_limit=rss_limit) as (host, port, server):
            runner = Runner(
                host,
                port,
                app,
                profile,
                timeout=timeout,
                exact=replay.exact,
                server=server,
                rss_limit=rss_limit,
            )
            for number in range(1, args.runs + 1):
                result = runner.run(replay.steps)
                if result.failure is not None:
                    print(f"STILL FAILING (run {number} of {args.runs}): {result.failure}")
                    if result.step is not None and 0 <= result.step < len(replay.steps):
                        print(f"  at step {result.step + 1}. {describe(replay.steps[result.step])}")
                    return 1
    except ServerStartError as exc:
        return _usage(f"cannot start the server: {exc}")
    except OSError as exc:
        return _usage(f"cannot reach the server: {exc.strerror or exc}")
    print(f"FIXED: {args.runs} run(s) of {len(replay.steps)} steps passed (was: {replay.failure})")
    return 0
