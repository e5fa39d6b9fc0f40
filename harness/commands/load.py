"""``harness load [HOST PORT]``: drive a server with many pipelined connections and measure it."""

from __future__ import annotations

import argparse
import io
import json
import math
import resource
import socket
import sys
from typing import TYPE_CHECKING, Any

from harness._extras import require
from harness.commands._parsing import port, seconds

# harness.load is imported when the command runs, so that `harness` itself starts without it.
if TYPE_CHECKING:
    from harness.load import LoadResult, LoadStatus, ServerProcess

#: harness.load.MODES, from harness/load/config.py (tests/test_cli_startup.py checks that they agree).
MODES = ("pipeline", "connect-per-request")

DESCRIPTION = """\
Open CONNECTIONS connections to HOST PORT, keep DEPTH requests in flight on each (the
guide's searches and one binary request, in turn) for DURATION seconds, and report
requests/s, latency p50/p90/p99/max and errors. Every well-formed lpjson message coming
back counts as an answer; an error message from the server counts as an error.
Without HOST PORT, the reference server (`harness serve`) is started in a child process
on 127.0.0.1 and a free port, so that it and the generator each get a core.
A status line goes to stderr every second.

--rate R sends R requests/s in all (wrk2's fixed arrival rate) instead of replacing each
answer at once: each request's latency counts from the time it was due, so a server
that stalls shows in the percentiles. The thresholds (--max-p99, --max-p999,
--max-errors, --min-rps) make a missed limit exit 1, the summary saying which.

Exit status: 0 when every request was answered without error and every threshold was
met; 1 when there were errors or no answers, a threshold was missed, or the target
could not be reached (one line, before any load); 2 on bad usage.
"""


def _depth(text: str) -> int:
    """-d is the depth, as in ``-d DEPTH``; wrk's -d is a duration: say so when one is given."""
    try:
        return int(text)
    except ValueError:
        pass
    if text.strip().endswith(("ms", "s", "m", "h")):
        try:
            seconds(zero=True)(text)
        except argparse.ArgumentTypeError:
            pass
        else:
            raise argparse.ArgumentTypeError(
                f"{text!r} is a duration; -d is the requests in flight per connection (the duration "
                "is --duration)"
            )
    raise argparse.ArgumentTypeError(f"not an integer: {text!r}")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load-test a server: many pipelined connections, requests/s and latency",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="server address (default: start one)")
    parser.add_argument("port", nargs="?", type=port(1), metavar="PORT", help="server port")
    parser.add_argument("-c", "--connections", type=int, default=50, help="connections (default 50)")
    parser.add_argument(
        "-d", "--depth", type=_depth, default=10, help="requests in flight per connection (default 10)"
    )
    parser.add_argument(
        "--duration",
        type=seconds(zero=False),
        default=10.0,
        help="seconds measured, or with a unit: 500ms, 30s, 2m (default 10)",
    )
    parser.add_argument(
        "--warmup",
        type=seconds(zero=True),
        default=1.0,
        help="seconds of load before measuring starts (default 1)",
    )
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="pipeline",
        help="pipeline: long-lived connections (default); connect-per-request: the guide's "
        "pattern, a new connection for every request (-d is ignored)",
    )
    parser.add_argument(
        "--timeout",
        type=seconds(zero=False),
        default=5.0,
        help="seconds without an answer before a connection counts as timed out and is reopened (default 5)",
    )
    parser.add_argument(
        "--rate",
        type=float,
        metavar="R",
        help="a fixed arrival rate: R requests/s across all connections, latency from each "
        "request's intended send time (pipeline mode; -d bounds the requests in flight per connection)",
    )
    parser.add_argument("--max-p99", type=float, metavar="MS", help="exit 1 if p99 latency exceeds MS")
    parser.add_argument("--max-p999", type=float, metavar="MS", help="exit 1 if p99.9 latency exceeds MS")
    parser.add_argument("--max-errors", type=int, metavar="N", help="exit 1 if there are more than N errors")
    parser.add_argument("--min-rps", type=float, metavar="R", help="exit 1 if fewer than R answers/s")
    parser.add_argument("--uvloop", action="store_true", help="run the generator on uvloop")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="FILE",
        help="write the result as one JSON object to FILE (no FILE or -: stdout, instead of the summary)",
    )
    parser.add_argument(
        "--csv",
        metavar="FILE",
        help="write one row per status interval and a total row to FILE (- for stdout)",
    )
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.set_defaults(func=run)


def _status_printer(stream: Any) -> Any:
    live = stream.isatty()

    def show(status: LoadStatus) -> None:
        phase = "measuring" if status.measuring else "warm-up"
        p99 = "-" if math.isnan(status.interval_p99_ms) else f"{status.interval_p99_ms:.2f} ms"
        line = (
            f"{status.elapsed:6.1f}s {phase:9} {status.interval_rate:11,.0f} req/s  p99 {p99:>10}  "
            f"answers {status.answers:,}  errors {status.errors}  open {status.open_connections}"
            + (f"  waiting {status.waiting:,}" if status.waiting else "")
        )
        stream.write(("\r" + line + "\x1b[K") if live else line + "\n")
        stream.flush()

    return show


def _raise_fd_limit(wanted: int) -> None:
    """Lift the soft RLIMIT_NOFILE towards ``wanted`` (never above the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def _report(result: LoadResult, args: argparse.Namespace, started_server: bool, missed: list[str]) -> int:
    """Print and write the result; return 1 if a file could not be written, else 0."""
    if args.json is not None:
        data = result.to_json()
        data["server"] = "reference (started by harness load)" if started_server else "external"
        data["thresholds_missed"] = missed
        text = json.dumps(data)
        if args.json == "-":
            print(text)
        elif not _write(args.json, text + "\n"):
            return 1
    if args.json != "-":
        print(result.summary())
        for line in missed:
            print(f"threshold missed: {line}")
    if args.csv is not None:
        if args.csv == "-":
            result.write_csv(sys.stdout)
        else:
            buffer = io.StringIO()
            result.write_csv(buffer)
            if not _write(args.csv, buffer.getvalue()):
                return 1
    return 0


def _write(path: str, text: str) -> bool:
    try:
        with open(path, "w", encoding="utf-8", newline="") as out:
            out.write(text)
    except OSError as exc:
        print(f"harness load: cannot write {path}: {exc.strerror}", file=sys.stderr)
        return False
    return True


def _reachable(host: str, port: int, timeout: float) -> str | None:
    """None if ``host:port`` accepts a connection, else why not (one line)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer to a connect within {timeout:g} s (connect-timeout)"
    except ConnectionRefusedError:
        return "connection refused (connect-refused)"
    except OSError as exc:
        return f"{exc.strerror or exc}"


def run(args: argparse.Namespace) -> int:
    from harness.load import LoadConfig, ServerProcess, Thresholds, run_load

    if (args.host is None) != (args.port is None):
        print("harness load: give both HOST and PORT, or neither", file=sys.stderr)
        return 2
    if args.uvloop:
        require("--uvloop", "uvloop")
    try:
        thresholds = Thresholds(args.max_p99, args.max_p999, args.max_errors, args.min_rps)
    except ValueError as exc:
        print(f"harness load: {exc}", file=sys.stderr)
        return 2
    server: ServerProcess | None = None
    try:
        if args.host is None:
            server = ServerProcess.reference()
            try:
                host, port = server.start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                print(f"harness load: could not start the reference server: {exc}", file=sys.stderr)
                return 1
            if not args.quiet:
                print(f"started the reference server (pid {server.pid}) on {host}:{port}", file=sys.stderr)
        else:
            host, port = args.host, args.port
        try:
            config = LoadConfig(
                host,
                port,
                connections=args.connections,
                depth=args.depth,
                duration=args.duration,
                warmup=args.warmup,
                mode=args.mode,
                timeout=args.timeout,
                rate=args.rate,
            )
        except ValueError as exc:
            print(f"harness load: {exc}", file=sys.stderr)
            return 2
        why = _reachable(host, port, args.timeout)
        if why is not None:
            print(f"harness load: cannot reach {host}:{port}: {why}", file=sys.stderr)
            return 1
        _raise_fd_limit(args.connections + 64)
        progress = None if args.quiet else _status_printer(sys.stderr)
        result = run_load(config, progress, use_uvloop=args.uvloop)
        if progress is not None and sys.stderr.isatty():
            sys.stderr.write("\n")
        missed = thresholds.missed(result)
        if _report(result, args, server is not None, missed):
            return 1
    finally:
        if server is not None:
            server.stop()
    return 0 if result.answers and not result.errors_total and not missed else 1
