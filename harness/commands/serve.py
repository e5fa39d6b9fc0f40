"""``harness serve``: run the reference server in the foreground."""

from __future__ import annotations

import argparse
import logging
import sys

from harness._extras import require
from harness.apps import APPS, get_app
from harness.commands._parsing import integer, port, seconds
from harness.connection import DEFAULT_MAX_PENDING_OUTPUT
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.server import (
    DEFAULT_BACKLOG,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    DEFAULT_SHUTDOWN_TIMEOUT,
    ServerConfig,
    raise_fd_limit,
    serve,
)

DESCRIPTION = """\
Run the reference lpjson server (docs/PROTOCOL.md): an application (--app: the
search application, or echo), every request on a connection answered in order
(pipelining, rule S1), protocol errors answered with an error message and that
connection closed (rule S2).

The first line on stdout is "Listening on HOST:PORT" (the real port with --port 0).
SIGINT or SIGTERM: stop accepting, flush the responses already produced (for at
most --shutdown-timeout seconds), exit 0. Logs go to stderr: one INFO line per
connection opened, closed or failed; DEBUG adds one line per request.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the reference server",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument(
        "--port",
        type=port(0),
        default=DEFAULT_PORT,
        help=f"port, 0 for any free one (default {DEFAULT_PORT})",
    )
    parser.add_argument(
        "--app",
        choices=sorted(APPS),
        default="search",
        help="the application to serve: search (the guide's, rules A1-A3) or echo (every "
        "request answered with itself, rule A4); default search",
    )
    parser.add_argument(
        "--max-content-length",
        type=integer(0),
        default=DEFAULT_MAX_CONTENT_LENGTH,
        metavar="BYTES",
        help="largest content-length accepted; a larger one is refused as soon as the header "
        f"is read (default {DEFAULT_MAX_CONTENT_LENGTH})",
    )
    parser.add_argument(
        "--idle-timeout",
        type=seconds(zero=True),
        default=DEFAULT_IDLE_TIMEOUT,
        metavar="SECONDS",
        help="close a connection that completes no request (and reads none of its responses) "
        f"for this long, even if it trickles bytes; 0 disables (default {DEFAULT_IDLE_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=integer(1),
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections served at once; more are sent the error 'too-many-connections' and "
        f"closed (default {DEFAULT_MAX_CONNECTIONS}; the open-file limit is raised to fit if allowed)",
    )
    parser.add_argument(
        "--max-pending-output",
        type=integer(1),
        default=DEFAULT_MAX_PENDING_OUTPUT,
        metavar="BYTES",
        help="stop reading a connection while this much of its output is unsent "
        f"(default {DEFAULT_MAX_PENDING_OUTPUT})",
    )
    parser.add_argument(
        "--backlog",
        type=integer(1),
        default=DEFAULT_BACKLOG,
        metavar="N",
        help=f"listen() backlog (default {DEFAULT_BACKLOG}; capped by net.core.somaxconn)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=seconds(zero=True),
        default=DEFAULT_SHUTDOWN_TIMEOUT,
        metavar="SECONDS",
        help="on SIGINT/SIGTERM, wait this long for connections to flush their responses, then "
        f"abort them (default {DEFAULT_SHUTDOWN_TIMEOUT:g})",
    )
    parser.add_argument(
        "--loop",
        choices=["auto", "uvloop", "asyncio"],
        default="auto",
        help="event loop: uvloop when installed (auto, the default), or force one",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="logging level on stderr (default info)",
    )
    parser.add_argument(
        "--chaos",
        metavar="KIND",
        help="misbehave on purpose, for manual work with a client: answer every request the way "
        "the probe-client check KIND does (split-prefix, drip, violation-duplicate-key, huge-length, "
        "close-early, reset, silent, ...; `harness probe-client --list`); only --host, --port and "
        "--log-level apply",
    )
    parser.set_defaults(func=run)


def _chaos(args: argparse.Namespace) -> int:
    from harness.clientprobe.chaos import serve_chaos

    def ready(address: tuple[str, int]) -> None:
        print(f"Listening on {address[0]}:{address[1]}", flush=True)

    try:
        serve_chaos(args.chaos, args.host, args.port, ready)
    except ValueError as exc:
        print(f"harness serve: --chaos: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"harness serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    if args.chaos is not None:
        logging.basicConfig(
            level=getattr(logging, args.log_level.upper()),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        return _chaos(args)
    if args.loop == "uvloop":
        require("--loop uvloop", "uvloop")
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = ServerConfig(
            host=args.host,
            port=args.port,
            max_content_length=args.max_content_length,
            idle_timeout=args.idle_timeout or None,
            max_connections=args.max_connections,
            max_pending_output=args.max_pending_output,
            backlog=args.backlog,
            shutdown_timeout=args.shutdown_timeout,
            use_uvloop={"auto": None, "uvloop": True, "asyncio": False}[args.loop],
            app=get_app(args.app),
        )
    except ValueError as exc:
        print(f"harness serve: {exc}", file=sys.stderr)
        return 2
    raise_fd_limit(config.max_connections + 64)

    def ready(address: tuple[str, int]) -> None:
        print(f"Listening on {address[0]}:{address[1]}", flush=True)

    try:
        serve(config, ready)
    except ImportError as exc:
        print(f"harness serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(
            f"harness serve: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    return 0
