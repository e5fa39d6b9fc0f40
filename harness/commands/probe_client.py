"""``harness probe-client -- CMD ARGS...``: play a hostile server and judge a client."""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from harness._extras import DISTRIBUTION, installed
from harness.commands._parsing import add_command_parser

if TYPE_CHECKING:
    from harness.clientprobe.checks import ClientCheck
    from harness.clientprobe.runner import ClientCheckResult, ClientProbeResult

DESCRIPTION = """\
Check an lpjson client (docs/probe-client.md): harness plays a hostile server on
127.0.0.1 and a free port and runs CMD once per check, with {host} and {port} in its
arguments replaced. Each check answers the client's request (computed through the
search application, so any request works) in one bad way: split inside the prefix,
the header or the content, coalesced with a second message, dripped a byte at a time,
spoiled by each protocol violation, with a huge declared length, cut short by a FIN or
a reset, or never. The verdict comes from the client's exit status, its output (the
answer printed, or an error reported; a traceback with exit status 0 is a crash) and
whether it ended within the check's bound (10 s times --timeout, plus 3 s to start).

Failures get a capture (pcapng, with the pcap extra) and a rerun line. Exit status:
0 when every check passes, 1 when one fails, 2 on a usage error.

  harness probe-client -- python app-client.py {host} {port} search morpheus
  harness probe-client --check 'split-*' -- ./myclient {host}:{port}
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = add_command_parser(
        subparsers,
        "probe-client",
        help="check a client against a hostile server (split, dripped, broken, silent answers)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="append",
        default=[],
        metavar="GLOB",
        help="run only the checks whose names match GLOB ('split-*'; repeatable; see --list)",
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="GLOB", help="leave out the checks matching GLOB"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1.0,
        metavar="SCALE",
        help="multiply every check's time bound by SCALE (default 1: 10 s)",
    )
    parser.add_argument(
        "--pcap-dir",
        type=Path,
        metavar="DIR",
        help="write DIR/<check>.pcapng for each failing check (default: a new temporary directory)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--list", action="store_true", help="list the checks and exit")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    parser.add_argument(
        "command",
        nargs=argparse.REMAINDER,
        metavar="-- CMD ARGS...",
        help="the client to run, with {host} and {port} where the server's address goes",
    )
    parser.set_defaults(func=run)


def _usage(message: str) -> int:
    print(f"harness probe-client: {message}", file=sys.stderr)
    return 2


def _list(checks: list[ClientCheck]) -> None:
    width = max(len(check.name) for check in checks)
    for check in checks:
        columns = f"{check.name:<{width}}  {check.bound:>4.0f}s  {check.rule:<3}  {check.expect.value:<6}"
        print(f"{columns}  {check.summary}")


def run(args: argparse.Namespace) -> int:
    from harness.clientprobe.checks import select_checks

    try:
        checks = select_checks(args.check, args.skip)
    except ValueError as exc:
        return _usage(str(exc))
    if not checks:
        return _usage("--check and --skip leave no check to run")
    if args.list:
        _list(checks)
        return 0
    # The shared one-line parser keeps everything after `--` whole, as server_command.
    command = list(args.server_command or args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        return _usage("give the client's command after --")
    if not any("{port}" in arg for arg in command):
        return _usage("the command must say where the port goes: put {port} (and {host}) in its arguments")
    if not 0 < args.timeout < math.inf:
        return _usage("--timeout must be > 0 and finite")
    return _probe(checks, command, args)


def _probe(checks: list[ClientCheck], command: list[str], args: argparse.Namespace) -> int:
    from harness.clientprobe.runner import rerun_command, run_checks, write_captures

    def progress(index: int, total: int, check: ClientCheck, result: ClientCheckResult) -> None:
        if args.quiet:
            return
        width = len(str(total))
        line = f"[{index + 1:>{width}}/{total}] {check.name}: {result.status} in {result.seconds:.2f}s"
        if result.status == "fail":
            line += f"\n      {result.detail}"
            if check.hint:
                line += f"\n      hint: {check.hint}"
            line += f"\n      rerun: {rerun_command(command, check.name, args.timeout)}"
        print(line, file=sys.stderr, flush=True)

    if not args.quiet:
        print(
            f"probing the client {' '.join(command)} with {len(checks)} checks", file=sys.stderr, flush=True
        )
    probe = run_checks(checks, command, scale=args.timeout, progress=progress)
    captures: dict[str, Path] = {}
    note = ""
    if probe.failed:
        if not installed("scapy"):
            note = f"no captures: they need scapy: pip install '{DISTRIBUTION}[pcap]'"
        else:
            directory = args.pcap_dir or Path(tempfile.mkdtemp(prefix="harness-probe-client-"))
            try:
                captures = write_captures(probe, directory)
            except OSError as exc:
                note = f"cannot write captures to {directory}: {exc.strerror or exc}"
    if note:
        print(f"harness probe-client: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps(_to_json(probe, captures), indent=2, ensure_ascii=False))
    else:
        print(_table(probe, captures))
    return 0 if probe.ok else 1


def _to_json(probe: ClientProbeResult, captures: dict[str, Path]) -> dict[str, object]:
    from harness.clientprobe.runner import rerun_command

    checks = []
    for r in probe.results:
        entry = r.to_json()
        if r.status == "fail":
            entry["rerun"] = rerun_command(probe.command, r.name, probe.scale)
            if r.name in captures:
                entry["capture"] = str(captures[r.name])
        checks.append(entry)
    return {
        "schema": 1,
        "command": list(probe.command),
        "timeout_scale": probe.scale,
        "checks": checks,
        "passed": probe.passed,
        "failed": probe.failed,
        "skipped": probe.skipped,
        "ok": probe.ok,
        "seconds": round(probe.seconds, 3),
    }


def _table(probe: ClientProbeResult, captures: dict[str, Path]) -> str:
    import textwrap

    from harness.clientprobe.runner import rerun_command

    width = max(len(r.name) for r in probe.results)
    lines = [f"probe of the client {' '.join(probe.command)}", ""]
    lines.append(f"{'check':<{width}}  {'status':<6}  {'secs':>5}  detail")
    lines.append(f"{'-' * width}  {'-' * 6}  {'-' * 5}  {'-' * 6}")
    indent = " " * (width + 17)
    for r in probe.results:
        wrapped = textwrap.wrap(r.detail, 80) or [""]
        lines.append(f"{r.name:<{width}}  {r.status:<6}  {r.seconds:5.2f}  {wrapped[0]}")
        lines += [indent + more for more in wrapped[1:]]
        if r.name in captures:
            lines.append(f"{indent}capture: {captures[r.name]}")
    lines += [
        "",
        f"{probe.passed} passed, {probe.failed} failed, {probe.skipped} skipped in {probe.seconds:.1f}s",
    ]
    failures = [r for r in probe.results if r.status == "fail"]
    if failures:
        lines += ["", "rerun a failing check:"]
        lines += [f"  {rerun_command(probe.command, r.name, probe.scale)}" for r in failures]
    return "\n".join(lines)
