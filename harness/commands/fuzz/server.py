"""``harness fuzz server [HOST PORT | -- CMD ...]``: generative fuzzing of a live server."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness._extras import require
from harness.commands._parsing import add_command_parser, seconds

if TYPE_CHECKING:
    from harness.livefuzz.engine import FuzzReport, FuzzStats

DESCRIPTION = """\
Fuzz a live lpjson server: Hypothesis generates programs of steps (open connections, send
requests of every shape the spec allows and violations of every kind, cut anywhere and
paced, pipelined, half-close, close, stay idle, read the answers) and runs them over real
sockets. The reference implementation, fed the same bytes, says what the server must
answer and whether it must close; answers are compared by header values and decoded
content (error messages by code) unless --exact. A fresh connection must still be served
after each case and nothing may hang past --timeout. With -- CMD the server is started
({host} and {port} are replaced) and watched: it must not die, print a traceback or grow
its memory past --rss-limit. Sentinels judge what one case cannot: two connections left
idle from the start must be closed by the server within --idle-timeout and a margin, and,
with a command, late in the run a client that never reads and 96 large requests must not
grow its memory past --rss-limit.

A failure is shrunk to the smallest program, printed as numbered steps and written under
--out as a replay file (JSON), a capture (with the pcap extra) and the command that
replays it (harness replay FILE). Failures are kept in an example database (--db) and
tried first by the next run. Without HOST PORT or a command, the embedded reference
server is fuzzed. Exit status: 1 when something failed, 0 when the budget ran out with
nothing found, 2 on a usage error or when the server cannot be started or reached.
See docs/live-fuzzing.md.
"""


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """``HOST PORT`` as ``args.target``; the command after ``--`` lands in ``args.server_command``
    (the shared parser, :class:`~harness.commands._parsing.WithCommand`)."""
    parser.add_argument(
        "target",
        nargs="*",
        metavar="HOST PORT | -- CMD",
        help="the server's address, or -- and the command that starts it ({host}, {port} replaced)",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command_parser(
        subparsers,
        "server",
        help="fuzz a live server with generated programs, a differential oracle and shrinking",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_target_arguments(parser)
    parser.add_argument("--app", default="search", metavar="NAME", help="search (default) or echo")
    parser.add_argument(
        "--profile", default="strict", metavar="NAME", help="strict (default) or guide (as harness probe)"
    )
    parser.add_argument("--exact", action="store_true", help="compare answers byte for byte")
    parser.add_argument(
        "--max-time",
        type=seconds(zero=False),
        default=60.0,
        metavar="SECONDS",
        help="time budget (default 60)",
    )
    parser.add_argument("--max-examples", type=int, metavar="N", help="stop after N cases")
    parser.add_argument(
        "--seed", type=int, default=0, help="Hypothesis seed (default 0): the same seed, the same cases"
    )
    parser.add_argument(
        "--shrink-time",
        type=seconds(zero=False),
        metavar="SECONDS",
        help="bound on shrinking a failure (default: the larger of 30 s and --max-time)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds(zero=False),
        default=2.0,
        metavar="SECONDS",
        help="bound on every wait (default 2)",
    )
    parser.add_argument(
        "--max-steps", type=int, default=8, metavar="N", help="longest program (default 8 steps)"
    )
    parser.add_argument(
        "--db",
        type=Path,
        default=Path(".harness/examples"),
        metavar="DIR",
        help="Hypothesis example database (default .harness/examples)",
    )
    parser.add_argument("--no-db", action="store_true", help="keep no example database")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(".harness"),
        metavar="DIR",
        help="where failures go (default .harness)",
    )
    parser.add_argument(
        "--rss-limit", type=float, default=64.0, metavar="MIB", help="memory growth bound (default 64 MiB)"
    )
    parser.add_argument(
        "--idle-timeout",
        type=seconds(zero=True),
        default=30.0,
        metavar="SECONDS",
        help="the longest idle timeout the server may have (L2): connections gone quiet must be closed "
        "within SECONDS, judged by the idle sentinel whenever the run lasts that long (default 30, the "
        "reference server's; 0: not judged)",
    )
    parser.add_argument(
        "--no-sentinels",
        action="store_true",
        help="no sentinels (the idle connections and, with a command, the memory programs)",
    )
    parser.add_argument(
        "--no-feedback", action="store_true", help="no hypothesis.target() toward behaviour not yet seen"
    )
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"harness fuzz server: {message}", file=sys.stderr)
    return 2


def _format_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"  # pragma: no cover


def status_line(stats: FuzzStats) -> str:
    line = (
        f"{stats.seconds:6.1f} s  {stats.cases} cases ({stats.rate:.1f}/s)  {stats.connections} connections  "
        f"sent {_format_bytes(stats.bytes_sent)}  received {_format_bytes(stats.bytes_received)}  "
        f"{stats.behaviours} behaviours  {stats.failures} failing"
    )
    return line + ("  (shrinking)" if stats.shrinking else "")


class _Status:
    """The live status line on stderr: redrawn in place on a terminal, every 5 s otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.drawn = False

    def __call__(self, stats: FuzzStats) -> None:
        if self.quiet:
            return
        interval = 0.25 if self.tty else 5.0
        if stats.seconds - self.last < interval:
            return
        self.last = stats.seconds
        if self.tty:
            print(f"\r\x1b[K{status_line(stats)}", end="", file=sys.stderr, flush=True)
            self.drawn = True
        else:
            print(status_line(stats), file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.drawn:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    require("harness fuzz server", "hypothesis")
    from harness.apps import get_app
    from harness.exampledb import example_database
    from harness.livefuzz.target import parse_target
    from harness.probe.profiles import get_profile

    try:
        app = get_app(args.app)
        profile = get_profile(args.profile)
        if not args.no_db:
            example_database(local=args.db)  # a HARNESS_EXAMPLE_DB that is not a redis:// URL
    except ValueError as exc:
        return _usage(str(exc))
    target = parse_target(args.target, args.server_command)
    if isinstance(target, str):
        return _usage(target)
    if args.max_examples is not None and args.max_examples < 1:
        return _usage("--max-examples must be >= 1")
    if not 1 <= args.max_steps <= 100:
        return _usage("--max-steps must be 1-100")
    if not (0 < args.rss_limit < math.inf):
        return _usage("--rss-limit must be > 0 and finite")
    from harness.livefuzz.runner import Runner
    from harness.livefuzz.target import running
    from harness.supervise import ServerStartError

    rss_limit = int(args.rss_limit * (1 << 20))
    status = _Status(args.quiet)
    try:
        with running(target, app, rss_limit=rss_limit) as (host, port, server):
            from harness.livefuzz.engine import fuzz

            if not args.quiet:
                print(
                    f"fuzzing {target} on {host}:{port} (app {app.name}, profile {profile.name}, "
                    f"seed {args.seed}, "
                    f"budget {args.max_time:g} s"
                    + (f" or {args.max_examples} cases" if args.max_examples else "")
                    + ")",
                    file=sys.stderr,
                    flush=True,
                )
            runner = Runner(
                host,
                port,
                app,
                profile,
                timeout=args.timeout,
                exact=args.exact,
                server=server,
                rss_limit=rss_limit,
            )
            from harness.livefuzz.sentinels import Sentinels

            sentinels = (
                None
                if args.no_sentinels
                else Sentinels(
                    runner,
                    idle_timeout=args.idle_timeout or None,
                    memory=server is not None,
                    max_time=args.max_time,
                )
            )
            try:
                report = fuzz(
                    runner,
                    max_time=args.max_time,
                    max_examples=args.max_examples,
                    seed=args.seed,
                    database=None if args.no_db else args.db,
                    feedback=not args.no_feedback,
                    max_steps=args.max_steps,
                    shrink_time=args.shrink_time,
                    progress=status,
                    sentinels=sentinels,
                )
            finally:
                status.done()
            return _report(report, args, target, host, port)
    except ServerStartError as exc:
        return _usage(f"cannot start the server: {exc}")
    except OSError as exc:
        return _usage(f"cannot reach the server: {exc.strerror or exc}")


def _report(report: FuzzReport, args: argparse.Namespace, target: object, host: str, port: int) -> int:
    from harness.livefuzz.program import describe
    from harness.livefuzz.replay import ReplayFile, file_stem, replay_command, write, write_capture
    from harness.livefuzz.target import Target

    assert isinstance(target, Target)
    stats = report.stats
    summary = (
        f"{stats.cases} cases in {stats.seconds:.1f} s ({stats.rate:.1f}/s), "
        f"{stats.connections} connections, "
        f"sent {_format_bytes(stats.bytes_sent)}, received {_format_bytes(stats.bytes_received)}, "
        f"{stats.behaviours} distinct behaviours, seed {report.seed} (cases digest {stats.digest})"
    )
    finding = report.finding
    if finding is None:
        why = "time budget spent" if report.ended == "time" else "case budget spent"
        print(f"no failure: {summary} ({why})")
        for note in report.notes:
            print(f"sentinel: {note}")
        return 0
    result = finding.result
    if finding.sentinel:
        print(
            f"FAILED after {finding.first_found_after:.1f} s (a sentinel, after case "
            f"{finding.first_found_case}; not shrunk), {len(finding.program)} step(s):"
        )
    else:
        print(
            f"FAILED after {finding.first_found_after:.1f} s (case {finding.first_found_case}); "
            f"shrunk to {len(finding.program)} step(s):"
        )
    for number, step in enumerate(finding.program, 1):
        marker = "  <- fails here" if result.step == number - 1 else ""
        print(f"  {number}. {describe(step)}{marker}")
    print(f"failure: {result.failure}")
    replay = ReplayFile(
        steps=finding.program,
        app=args.app,
        profile=args.profile,
        exact=args.exact,
        timeout=args.timeout,
        failure=result.failure or "",
        step=result.step,
        host=target.host,
        port=target.port,
        command=target.command,
        rss_limit=args.rss_limit,
    )
    try:
        path = write(replay, args.out)
    except OSError as exc:
        print(f"harness fuzz server: cannot write the replay file under {args.out}: {exc}", file=sys.stderr)
        print(summary)
        return 1
    print(f"replay file: {path}")
    try:
        import scapy  # noqa: F401
    except ImportError:
        print("capture: not written (needs the pcap extra: pip install 'harness[pcap]')")
    else:
        capture = write_capture(
            result.transcripts, args.out / f"{file_stem(finding.program)}.pcapng", port, ":" in host
        )
        print(f"capture: {capture}")
    print(f"replay: {replay_command(path, replay)}")
    print(summary)
    return 1
