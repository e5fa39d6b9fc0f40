"""``harness probe [HOST PORT]``: check a live server, check by check."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness._extras import require

# The probe's modules are imported when the command runs, so that `harness` itself starts
# without them; scapy (the pcap extra) only when --pcap-dir asks for captures.
if TYPE_CHECKING:
    from harness.probe.checks import Check
    from harness.probe.runner import Target

DESCRIPTION = """\
Check a server that claims to speak lpjson (docs/PROTOCOL.md) and give a verdict, check by
check: the guide's answers, requests split anywhere, pipelining, concurrency,
half-close, slow and non-reading clients, a huge declared length and every protocol
violation. Each check uses its own fresh connections and its own time bound: a hung
server is a verdict, not a hung probe. A failure is either "spec" (deviates from
docs/PROTOCOL.md) or "unsafe" (hangs, dies, or stops serving others). Each check tests one
rule of docs/PROTOCOL.md (F2, S4, H4, ...): --list shows it, a failure names it.

--protocol echo probes a raw byte-echo server instead (the guide's echo-server.py and
multiconn-server.py), with the checks of docs/PROTOCOL.md#byte-echo (X1-X6).

Without HOST PORT the reference server is started in process on 127.0.0.1 and a free
port (lpjson only). Progress goes to stderr; the table (or --json) to stdout. Exit
status: 0 when every check passes, 1 when one fails or is skipped, 2 when the target
cannot be reached.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="check a live server against the protocol (default: the embedded reference server)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("host", nargs="?", metavar="HOST", help="server address (default: embedded server)")
    parser.add_argument("port", nargs="?", type=int, metavar="PORT", help="server port")
    parser.add_argument(
        "--check",
        action="append",
        metavar="NAME",
        default=[],
        help="run only this check (repeatable; see --list)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="lpjson",
        help="what the server speaks: lpjson (default) or echo, a raw byte-echo server",
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
        "--pcap-dir",
        type=Path,
        metavar="DIR",
        help="write DIR/<check>.pcapng for each failing check: the bytes sent and "
        "received, with their real chunking",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument(
        "--list", action="store_true", help="list the checks (name, time bound, rule, what it sends) and exit"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.set_defaults(func=run)


#: --protocol's choices; each selects its own list of checks.
PROTOCOLS = ("lpjson", "echo")


def _checks(protocol: str) -> list[Check]:
    if protocol == "echo":
        from harness.probe.echo import ECHO_CHECKS

        return list(ECHO_CHECKS)
    from harness.probe.checks import CHECKS

    return list(CHECKS)


def _select(names: list[str], protocol: str = "lpjson") -> list[Check] | str:
    checks = _checks(protocol)
    if not names:
        return checks
    known = {check.name: check for check in checks}
    unknown = [name for name in names if name not in known]
    if unknown:
        return f"unknown check(s): {', '.join(unknown)} (see harness probe --protocol {protocol} --list)"
    return [check for check in checks if check.name in names]


def run(args: argparse.Namespace) -> int:
    if args.pcap_dir is not None:
        require("--pcap-dir", "scapy")
    from harness.probe.runner import Target

    if args.list:
        listed = _checks(args.protocol)
        width = max(len(check.name) for check in listed)
        for check in listed:
            print(f"{check.name:<{width}}  {check.timeout:>4.0f}s  {check.rule:<3}  {check.summary}")
        return 0
    if (args.host is None) != (args.port is None):
        print("harness probe: give both HOST and PORT, or neither", file=sys.stderr)
        return 2
    if not 0 < args.timeout < math.inf:  # NaN and inf would reach Thread.join() and raise there
        print("harness probe: --timeout must be > 0 and finite", file=sys.stderr)
        return 2
    if args.host is None and args.protocol != "lpjson":
        why = f"--protocol {args.protocol} needs HOST PORT (there is no embedded echo server)"
        print(f"harness probe: {why}", file=sys.stderr)
        return 2
    checks = _select(args.check, args.protocol)
    if isinstance(checks, str):
        print(f"harness probe: {checks}", file=sys.stderr)
        return 2
    if args.host is None:
        from harness.server import ReferenceServer

        with ReferenceServer("127.0.0.1", 0) as server:
            host, port = server.address
            return _probe(Target(host, port, embedded=True), checks, args)
    return _probe(Target(args.host, args.port), checks, args)


def _probe(target: Target, checks: list[Check], args: argparse.Namespace) -> int:
    from harness.probe.report import (
        breaks,
        format_progress,
        format_table,
        rerun_command,
        to_json,
        write_captures,
    )
    from harness.probe.runner import CheckResult, reachable, run_checks

    why = reachable(target, max(1.0, 2.0 * args.timeout))
    if why is not None:
        print(f"harness probe: cannot connect to {target}: {why}", file=sys.stderr)
        return 2

    def progress(index: int, total: int, check: Check, result: CheckResult | None) -> None:
        if args.quiet or result is None:
            return
        line = format_progress(index, total, check, result)
        if result.status == "fail":
            rerun = rerun_command(target, check.name, args.seed, args.timeout)
            hint = getattr(check, "hint", "")
            line += f"\n      {result.detail}\n      {breaks(check.rule)}"
            line += f"\n      hint: {hint}" if hint else ""
            line += f"\n      rerun: {rerun}"
        print(line, file=sys.stderr, flush=True)

    if not args.quiet:
        print(f"probing {target} with {len(checks)} checks (seed {args.seed})", file=sys.stderr, flush=True)
    probe = run_checks(checks, target, seed=args.seed, scale=args.timeout, progress=progress)
    captures: dict[str, Path] = {}
    if args.pcap_dir is not None:
        try:
            captures = write_captures(probe, args.pcap_dir)
        except OSError as exc:  # still report the verdicts the run produced
            print(f"harness probe: cannot write captures to {args.pcap_dir}: {exc}", file=sys.stderr)
        for name, path in captures.items():
            print(f"capture of {name}: {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(to_json(probe, captures), indent=2, ensure_ascii=False))
    else:
        print(format_table(probe))
    return 0 if probe.ok else 1
