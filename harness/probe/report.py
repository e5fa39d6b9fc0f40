"""Presenting a probe run: progress lines, the table, JSON, rerun commands, captures."""

from __future__ import annotations

import shlex
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.probe.checks import Check
from harness.probe.echo import ECHO_CHECKS
from harness.probe.runner import CheckResult, ProbeResult, Target
from harness.probe.wire import Transcript
from harness.spec import cite, rule

# harness.pcap needs scapy (the pcap extra): imported only when captures are written.
if TYPE_CHECKING:
    from harness.pcap import Direction, Session

__all__ = [
    "breaks",
    "format_progress",
    "format_table",
    "rerun_command",
    "to_json",
    "transcript_session",
    "write_captures",
]

_DETAIL_WIDTH = 72
#: Bytes of one connection written into a capture; the rest is left out (a non-reading client
#: may have sent many megabytes).
CAPTURE_LIMIT = 1 << 20
#: A check of this list is rerun with --protocol echo.
_ECHO_CHECK_NAMES = frozenset(check.name for check in ECHO_CHECKS)


def status_label(result: CheckResult) -> str:
    if result.status == "fail":
        return f"FAIL ({result.severity})" if result.severity else "FAIL"
    return result.status


def breaks(rule_id: str) -> str:
    """The line shown under a failing verdict: the rule the check tests, where to read it, its text."""
    return f"breaks {cite(rule_id)}: {rule(rule_id).text}"


def format_progress(index: int, total: int, check: Check, result: CheckResult | None) -> str:
    width = len(str(total))
    head = f"[{index + 1:>{width}}/{total}] {check.name}"
    if result is None:
        return f"{head} ..."
    return f"{head}: {status_label(result)} in {result.seconds:.2f}s"


def rerun_command(target: Target, name: str, seed: int, scale: float) -> str:
    """The one-line command that reruns just the check ``name``."""
    words = ["harness", "probe"]
    if not target.embedded:
        words += [target.host, str(target.port)]
    words += ["--check", name, "--seed", str(seed)]
    if name in _ECHO_CHECK_NAMES:
        words += ["--protocol", "echo"]
    if scale != 1.0:
        words += ["--timeout", f"{scale:g}"]
    return shlex.join(words)


def format_table(probe: ProbeResult) -> str:
    """The report a person reads: one row per check, then the totals and how to rerun failures."""
    results = probe.results
    name_width = max([5, *(len(r.name) for r in results)])
    status_width = max([6, *(len(status_label(r)) for r in results)])
    where = f"{probe.target} (embedded reference server)" if probe.target.embedded else str(probe.target)
    lines = [f"probe of {where}, seed {probe.seed}", ""]
    lines.append(f"{'check':<{name_width}}  {'status':<{status_width}}  {'secs':>5}  detail")
    lines.append(f"{'-' * name_width}  {'-' * status_width}  {'-' * 5}  {'-' * 6}")
    indent = " " * (name_width + status_width + 13)
    for r in results:
        wrapped = textwrap.wrap(r.detail, _DETAIL_WIDTH) or [""]
        lines.append(
            f"{r.name:<{name_width}}  {status_label(r):<{status_width}}  {r.seconds:5.2f}  {wrapped[0]}"
        )
        lines += [indent + more for more in wrapped[1:]]
        if r.status == "fail" and r.rule is not None:
            lines += [indent + more for more in textwrap.wrap(breaks(r.rule), _DETAIL_WIDTH)]
    lines.append("")
    lines.append(
        f"{probe.passed} passed, {probe.failed} failed, {probe.skipped} skipped in {probe.seconds:.1f}s"
    )
    failures = [r for r in results if r.status == "fail"]
    if failures:
        lines.append("")
        lines.append("rerun a failing check:")
        lines += [f"  {rerun_command(probe.target, r.name, probe.seed, probe.scale)}" for r in failures]
    return "\n".join(lines)


def to_json(probe: ProbeResult, captures: dict[str, Path] | None = None) -> dict[str, Any]:
    """The ``--json`` document."""
    checks = []
    for r in probe.results:
        entry = r.to_json()
        if r.status == "fail":
            entry["rerun"] = rerun_command(probe.target, r.name, probe.seed, probe.scale)
            if captures and r.name in captures:
                entry["capture"] = str(captures[r.name])
        checks.append(entry)
    return {
        "target": str(probe.target),
        "embedded": probe.target.embedded,
        "seed": probe.seed,
        "checks": checks,
        "passed": probe.passed,
        "failed": probe.failed,
        "skipped": probe.skipped,
        "seconds": round(probe.seconds, 3),
    }


def transcript_session(transcript: Transcript, check: str, server_port: int, ipv6: bool = False) -> Session:
    """One recorded connection as a capture session: every chunk is one ``send()`` as it happened."""
    from harness.pcap import CLIENT, SERVER, Send, Session

    sends = []
    total = 0
    truncated = False
    for chunk in transcript.chunks:
        if total >= CAPTURE_LIMIT:
            truncated = True
            break
        total += len(chunk.data)
        direction: Direction = CLIENT if chunk.outgoing else SERVER
        sends.append(
            Send(
                direction,
                chunk.data,
                f"{'sent' if chunk.outgoing else 'received'} at {chunk.time * 1000:.1f} ms",
            )
        )
    close: Direction | None
    if transcript.server_closed:
        close = SERVER
    elif transcript.client_shutdown:
        close = CLIENT
    else:
        close = None
    ending = ", ended by a reset" if transcript.reset else ""
    if truncated:
        ending += f", truncated after {total} bytes"
        close = None
    return Session(
        sends,
        comment=f"probe check {check}: {transcript.label}{ending}",
        server_port=server_port,
        ipv6=ipv6,
        close=close,
    )


def write_captures(probe: ProbeResult, directory: Path) -> dict[str, Path]:
    """Write ``DIR/<check>.pcapng`` for each failing check; return check name -> path."""
    from harness.pcap import write_sessions

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for r in probe.results:
        if r.status != "fail" or not r.transcripts:
            continue
        path = directory / f"{r.name}.pcapng"
        ipv6 = ":" in probe.target.host
        sessions = [transcript_session(t, r.name, probe.target.port, ipv6) for t in r.transcripts]
        write_sessions(path, sessions)
        written[r.name] = path
    return written
