"""``harness probe [HOST PORT]``: check a live server, check by check."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness._extras import require
from harness.commands._parsing import add_command_parser, seconds

# The probe's modules are imported when the command runs, so that `harness` itself starts
# without them; scapy (the pcap extra) only when --pcap-dir asks for captures.
if TYPE_CHECKING:
    from harness.apps import App
    from harness.probe.checks import Check
    from harness.probe.profiles import Profile
    from harness.probe.runner import Target
    from harness.supervise import ServerUnderTest

DESCRIPTION = """\
Check a server that claims to speak lpjson (docs/PROTOCOL.md) and give a verdict, check by
check: the application's answers, every text encoding, requests split anywhere, pipelining,
concurrency, half-close, slow and non-reading clients, a huge declared length, every
protocol violation and every kind of invalid header value. Each check uses its own fresh
connections and its own time bound: a hung server is a verdict, not a hung probe. A failure
is either "spec" (deviates from docs/PROTOCOL.md) or "unsafe" (hangs, dies, or stops
serving others); each names the rule it breaks (--list shows them) and a hint on what to
fix. A failure that follows from another (a split request not understood, a server that
stops answering) is reported as its consequence: the report leads with the root causes.

--profile guide judges the protocol as the guide's app-server.py implements it (one
request per connection, lax JSON, any codec); what makes a server unsafe still fails.
--app echo expects every answer to be the request itself.

--protocol echo probes a raw byte-echo server instead (the guide's echo-server.py and
multiconn-server.py), with the checks of docs/PROTOCOL.md#byte-echo (X1-X6).

Without HOST PORT the reference server is started in process on 127.0.0.1 and a free
port. Progress goes to stderr; the table (or --json) to stdout. Exit status: 0 when
every check passes, 1 when one fails, 2 on a usage error or when the target cannot be
reached.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    # Usage errors in one line; `-- CMD ARGS...` lands whole in args.server_command.
    parser = add_command_parser(
        subparsers,
        "probe",
        help="check a live server against the protocol (default: the embedded reference server)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="server address (default: embedded server)")
    parser.add_argument("port", nargs="?", type=int, metavar="PORT", help="server port")
    parser.add_argument(
        "--protocol",
        default="lpjson",
        metavar="NAME",
        help="the protocol to check: lpjson (default) or echo (a raw byte-echo server)",
    )
    parser.add_argument(
        "--profile",
        default="strict",
        metavar="NAME",
        help="strict (default: docs/PROTOCOL.md) or guide (the guide's app-server.py: one request "
        "per connection, lax JSON, any codec)",
    )
    parser.add_argument(
        "--app",
        default="search",
        metavar="NAME",
        help="the application whose answers are expected: search (default) or echo",
    )
    parser.add_argument(
        "--check",
        action="append",
        metavar="GLOB",
        default=[],
        help="run only the checks whose names match GLOB ('split-*'; repeatable; see --list)",
    )
    parser.add_argument(
        "--skip",
        action="append",
        metavar="GLOB",
        default=[],
        help="leave out the checks whose names match GLOB (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the random splittings (default 0)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="SCALE",
        help="multiply every check's time bound by SCALE (default 1)",
    )
    parser.add_argument(
        "--idle-timeout",
        type=seconds(zero=False),
        metavar="SECONDS",
        help="the longest idle timeout the server may have (L2): adds the idle-timeout check (a peer gone "
        "quiet mid-request must be cut off within SECONDS); without it L2 is not judged, since a probe "
        "lasts seconds",
    )
    parser.add_argument(
        "--pcap-dir",
        type=Path,
        metavar="DIR",
        help="write DIR/<check>.pcapng for each failing check: the bytes sent and "
        "received, with their real chunking",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object (schema 1)")
    parser.add_argument(
        "--junit-xml",
        type=Path,
        metavar="FILE",
        help="also write the report as JUnit XML to FILE (one testcase per check)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="list the checks (name, time bound, rule, group, what it checks, how profiles relax it) "
        "and exit",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    supervised = parser.add_argument_group(
        "the server under test (-- CMD ARGS...)",
        "harness probe [options] -- CMD ARGS... starts CMD itself, {host} and {port} in its "
        "arguments replaced, and watches it check by check: a crash fails the check as unsafe "
        "(and CMD is started again), what it prints is attached to the check, a Python "
        "traceback fails the check, and its memory is sampled during the checks where a bad "
        "client could grow it.",
    )
    supervised.add_argument(
        "--host",
        dest="server_host",
        default="127.0.0.1",
        metavar="ADDR",
        help="the address that replaces {host} (default 127.0.0.1)",
    )
    supervised.add_argument(
        "--port",
        dest="server_port",
        type=int,
        default=0,
        metavar="N",
        help="the port that replaces {port} (default: a free port)",
    )
    supervised.add_argument(
        "--start-timeout",
        type=seconds(zero=False),
        default=10.0,
        metavar="SECONDS",
        help="how long CMD may take to accept a connection (default 10)",
    )
    supervised.add_argument(
        "--rss-limit",
        type=float,
        default=64.0,
        metavar="MIB",
        help="RSS growth of CMD (and its children) during one check that fails it as unsafe (default 64)",
    )
    supervised.add_argument(
        "--allow-tracebacks",
        action="store_true",
        help="a Python traceback printed by CMD does not fail the check (it is still attached)",
    )
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"harness probe: {message}", file=sys.stderr)
    return 2


def _settings(args: argparse.Namespace) -> tuple[Profile, App, list[Check]] | str:
    """The profile, the application and the selected checks, or a usage error."""
    from harness.apps import get_app
    from harness.probe.catalog import checks_for, select_checks
    from harness.probe.profiles import get_profile

    try:
        profile = get_profile(args.profile)
        app = get_app(args.app)
        checks = checks_for(args.protocol, app, idle_timeout=args.idle_timeout)
        selected = select_checks(checks, args.check, args.skip)
    except ValueError as exc:
        return str(exc)
    if not selected:
        return "--check and --skip leave no check to run"
    return profile, app, selected


def _list(checks: list[Check]) -> None:
    from harness.probe.profiles import PROFILES

    width = max(len(check.name) for check in checks)
    group_width = max(len(check.group) for check in checks)
    for check in checks:
        relaxed = [p.name for p in PROFILES.values() if check.relaxations(p)]
        line = (
            f"{check.name:<{width}}  {check.timeout:>4.0f}s  {check.rule:<3}  {check.group:<{group_width}}  "
        )
        line += check.summary
        if relaxed:
            line += f"  [relaxed by --profile {', '.join(relaxed)}]"
        print(line)


def run(args: argparse.Namespace) -> int:
    if args.pcap_dir is not None:
        require("--pcap-dir", "scapy")
    from harness.probe.runner import Target

    settings = _settings(args)
    if isinstance(settings, str):
        return _usage(settings)
    profile, app, checks = settings
    if args.list:
        _list(checks)
        return 0
    if (args.host is None) != (args.port is None):
        return _usage("give both HOST and PORT, or neither")
    if args.port is not None and not 0 < args.port < 65536:
        return _usage(f"PORT must be 1-65535, not {args.port}")
    if not 0 < args.timeout < math.inf:  # NaN and inf would reach Thread.join() and raise there
        return _usage("--timeout must be > 0 and finite")
    if args.server_command is not None:
        return _probe_command(args.server_command, checks, profile, app, args)
    if args.host is None:
        if args.protocol != "lpjson":
            return _usage(
                f"the embedded server speaks lpjson: give HOST PORT to probe --protocol {args.protocol}"
            )
        from harness.server import ReferenceServer

        with ReferenceServer("127.0.0.1", 0, app=app) as server:
            host, port = server.address
            return _probe(Target(host, port, embedded=True), checks, profile, app, args)
    return _probe(Target(args.host, args.port), checks, profile, app, args)


def _probe_command(
    command: list[str], checks: list[Check], profile: Profile, app: App, args: argparse.Namespace
) -> int:
    """Start ``command``, probe it under the process monitor, stop it."""
    from harness.probe.runner import Target
    from harness.supervise import MiB, ServerStartError, ServerUnderTest

    if not command:
        return _usage("give the server's command after --: harness probe -- CMD ARGS...")
    if args.host is not None:
        return _usage("give HOST PORT or -- CMD ARGS..., not both")
    if not 0 <= args.server_port < 65536:
        return _usage(f"--port must be 0-65535, not {args.server_port}")
    if not 0 < args.rss_limit < math.inf:
        return _usage("--rss-limit must be > 0 and finite (MiB)")
    try:
        server = ServerUnderTest(
            command,
            host=args.server_host,
            port=args.server_port,
            start_timeout=args.start_timeout,
            rss_limit=int(args.rss_limit * MiB),
            allow_tracebacks=args.allow_tracebacks,
        )
    except ValueError as exc:
        return _usage(str(exc))
    try:
        server.start()
    except ServerStartError as exc:
        print(f"harness probe: the server under test did not start: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # --host that does not resolve, or no free port on it
        server.stop()
        print(f"harness probe: cannot start the server under test: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        host, port = server.address
        if not args.quiet:
            print(f"started {server!r} (pid {server.pid})", file=sys.stderr, flush=True)
        return _probe(Target(host, port), checks, profile, app, args, server=server)
    finally:
        server.stop()


def _probe(
    target: Target,
    checks: list[Check],
    profile: Profile,
    app: App,
    args: argparse.Namespace,
    server: ServerUnderTest | None = None,
) -> int:
    from harness.probe.report import (
        breaks,
        format_attachments,
        format_progress,
        format_table,
        rerun_command,
        to_json,
        write_captures,
    )
    from harness.probe.runner import CheckResult, reachable, run_checks
    from harness.probe.supervised import run_supervised

    command = tuple(server.command) if server is not None else None

    why = reachable(target, max(1.0, 2.0 * args.timeout))
    if why is not None:
        print(f"harness probe: cannot connect to {target}: {why}", file=sys.stderr)
        return 2

    def progress(index: int, total: int, check: Check, result: CheckResult | None) -> None:
        if args.quiet or result is None:
            return
        line = format_progress(index, total, check, result)
        if result.status == "fail":
            rerun = rerun_command(
                target,
                check.name,
                args.seed,
                args.timeout,
                profile=profile.name,
                app=app.name,
                protocol=args.protocol,
                command=command,
                idle_timeout=args.idle_timeout,
            )
            line += f"\n      {result.detail}"
            if result.cause is None:
                line += f"\n      {breaks(check.rule)}"
                if check.hint:
                    line += f"\n      hint: {check.hint}"
            line += "".join(f"\n      {text}" for text in format_attachments(result))
            line += f"\n      rerun: {rerun}"
        print(line, file=sys.stderr, flush=True)

    if not args.quiet:
        print(
            f"probing {target} with {len(checks)} checks (seed {args.seed}, profile {profile.name}, "
            f"app {app.name})",
            file=sys.stderr,
            flush=True,
        )
    if server is None:
        probe = run_checks(
            checks,
            target,
            seed=args.seed,
            scale=args.timeout,
            progress=progress,
            profile=profile,
            app=app,
            protocol=args.protocol,
        )
    else:
        probe, observer = run_supervised(
            checks,
            server,
            seed=args.seed,
            scale=args.timeout,
            progress=progress,
            profile=profile,
            app=app,
            protocol=args.protocol,
        )
        if not args.quiet and observer.restarts:
            plural = "s" if observer.restarts != 1 else ""
            print(f"the server under test was restarted {observer.restarts} time{plural}", file=sys.stderr)
        if observer.start_error is not None:
            print(
                f"harness probe: the server under test did not start again: {observer.start_error}",
                file=sys.stderr,
            )
    probe.idle_timeout = args.idle_timeout
    captures: dict[str, Path] = {}
    if args.pcap_dir is not None:
        try:
            captures = write_captures(probe, args.pcap_dir)
        except OSError as exc:  # still report the verdicts the run produced
            print(f"harness probe: cannot write captures to {args.pcap_dir}: {exc}", file=sys.stderr)
        for name, path in captures.items():
            print(f"capture of {name}: {path}", file=sys.stderr)
    if args.junit_xml is not None:
        from harness.probe.junit import write_junit_xml

        try:
            write_junit_xml(probe, args.junit_xml)
        except OSError as exc:  # still report the verdicts the run produced
            print(f"harness probe: cannot write {args.junit_xml}: {exc.strerror or exc}", file=sys.stderr)
    if args.json:
        print(json.dumps(to_json(probe, captures), indent=2, ensure_ascii=False))
    else:
        print(format_table(probe))
    return 0 if probe.ok else 1
