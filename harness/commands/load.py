"""``harness load [HOST PORT]``: drive a server with many pipelined connections and measure it."""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
from typing import TYPE_CHECKING, Any

from harness._extras import require

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
A status line goes to stderr every second. Exit status: 0 when every request was
answered without error, 1 when there were errors or no answers, 2 on bad usage.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "load",
        help="load-test a server: many pipelined connections, requests/s and latency",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="server address (default: start one)")
    parser.add_argument("port", nargs="?", type=int, metavar="PORT", help="server port")
    parser.add_argument("-c", "--connections", type=int, default=50, help="connections (default 50)")
    parser.add_argument(
        "-d", "--depth", type=int, default=10, help="requests in flight per connection (default 10)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured (default 10)")
    parser.add_argument(
        "--warmup", type=float, default=1.0, help="seconds of load before measuring starts (default 1)"
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
        type=float,
        default=5.0,
        help="seconds without an answer before a connection counts as timed out and is reopened (default 5)",
    )
    parser.add_argument("--uvloop", action="store_true", help="run the generator on uvloop")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
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


def _report(result: LoadResult, args: argparse.Namespace, started_server: bool) -> None:
    if args.json:
        data = result.to_json()
        data["server"] = "reference (started by harness load)" if started_server else "external"
        print(json.dumps(data))
    else:
        print(result.summary())


def run(args: argparse.Namespace) -> int:
    from harness.load import LoadConfig, ServerProcess, run_load

    if (args.host is None) != (args.port is None):
        print("harness load: give both HOST and PORT, or neither", file=sys.stderr)
        return 2
    if args.uvloop:
        require("--uvloop", "uvloop")
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
            )
        except ValueError as exc:
            print(f"harness load: {exc}", file=sys.stderr)
            return 2
        _raise_fd_limit(args.connections + 64)
        progress = None if args.quiet else _status_printer(sys.stderr)
        result = run_load(config, progress, use_uvloop=args.uvloop)
        if progress is not None and sys.stderr.isatty():
            sys.stderr.write("\n")
        _report(result, args, server is not None)
    finally:
        if server is not None:
            server.stop()
    return 0 if result.answers and not result.errors_total else 1
