"""Presenting a probe run: progress lines, the table, JSON, rerun commands, captures."""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.probe.checks import Check
from harness.probe.runner import CheckResult, ProbeResult, Target
from harness.probe.wire import Transcript
from harness.spec import cite, rule

# harness.capture.writer needs scapy (the pcap extra): imported only when captures are written.
if TYPE_CHECKING:
    from harness.capture.writer import Direction, Session

__all__ = [
    "JSON_SCHEMA",
    "breaks",
    "format_attachments",
    "format_progress",
    "format_root_causes",
    "format_table",
    "rerun_command",
    "rerun_of",
    "to_json",
    "transcript_session",
    "write_captures",
]

_DETAIL_WIDTH = 72
#: Lines of an attachment (the server's output) shown under a failed check in the table.
_ATTACHED_SHOWN = 8
#: Bytes of one connection written into a capture; the rest is left out (a non-reading client
#: may have sent many megabytes).
CAPTURE_LIMIT = 1 << 20


#: The version of the ``--json`` document's layout (docs/probe.md, "The JSON report").
JSON_SCHEMA = 1


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
    line = f"{head}: {status_label(result)} in {result.seconds:.2f}s"
    if result.status == "fail" and result.cause is not None:
        line += f" (because {result.cause} fails)"
    return line


def rerun_command(
    target: Target,
    name: str,
    seed: int,
    scale: float,
    *,
    profile: str = "strict",
    app: str = "search",
    protocol: str = "lpjson",
    command: Sequence[str] | None = None,
    idle_timeout: float | None = None,
) -> str:
    """The one-line command that reruns just the check ``name`` (against a server it starts
    itself when ``command`` is given: ``harness probe ... -- CMD ARGS...``)."""
    words = ["harness", "probe"]
    if not target.embedded and command is None:
        words += [target.host, str(target.port)]
    if protocol != "lpjson":
        words += ["--protocol", protocol]
    if profile != "strict":
        words += ["--profile", profile]
    if app != "search":
        words += ["--app", app]
    words += ["--check", name, "--seed", str(seed)]
    if scale != 1.0:
        words += ["--timeout", f"{scale:g}"]
    if idle_timeout is not None:
        words += ["--idle-timeout", f"{idle_timeout:g}"]
    if command is not None:
        words += ["--", *command]
    return shlex.join(words)


def rerun_of(probe: ProbeResult, name: str) -> str:
    """:func:`rerun_command` for the check ``name`` of ``probe``."""
    return rerun_command(
        probe.target,
        name,
        probe.seed,
        probe.scale,
        profile=probe.profile,
        app=probe.app,
        protocol=probe.protocol,
        command=probe.command,
        idle_timeout=probe.idle_timeout,
    )


def format_attachments(result: CheckResult, lines: int = _ATTACHED_SHOWN) -> list[str]:
    """A failed check's attachments for a person: each one's name, then its last ``lines``
    lines, indented (nothing for a check that passed: its output is in --json and JUnit)."""
    if result.status != "fail":
        return []
    shown: list[str] = []
    for name, text in result.attachments.items():
        body = text.splitlines()
        cut = len(body) - lines
        shown.append(f"{name}:" + (f" (last {lines} of {len(body)} lines)" if cut > 0 else ""))
        shown += [f"  | {line}" for line in body[-lines:]]
    return shown


def format_root_causes(probe: ProbeResult) -> list[str]:
    """The report's first lines: each root cause, what to fix, and the checks it explains."""
    roots = probe.root_causes
    if not roots:
        return []
    explained = sum(len(probe.consequences(r.name)) for r in roots)
    plural = "s" if len(roots) != 1 else ""
    lines = [
        f"{len(roots)} root cause{plural} of {probe.failed} failure{'s' if probe.failed != 1 else ''}"
        + (f" ({explained} fail because of {'them' if plural else 'it'})" if explained else "")
        + ":"
    ]
    for r in roots:
        cited = f" ({r.rule})" if r.rule else ""
        detail = r.detail if len(r.detail) <= _DETAIL_WIDTH else r.detail[: _DETAIL_WIDTH - 3] + "..."
        lines += textwrap.wrap(
            f"{r.name}{cited}: {status_label(r)}: {detail}",
            _DETAIL_WIDTH + 20,
            initial_indent="  ",
            subsequent_indent="      ",
            break_on_hyphens=False,
        )
        if r.hint:
            lines += textwrap.wrap(
                f"fix: {r.hint}",
                _DETAIL_WIDTH + 20,
                initial_indent="      ",
                subsequent_indent="        ",
                break_on_hyphens=False,
            )
        followers = [c.name for c in probe.consequences(r.name)]
        if followers:
            lines += textwrap.wrap(
                f"also fail because of it: {', '.join(followers)}",
                _DETAIL_WIDTH + 20,
                initial_indent="      ",
                subsequent_indent="        ",
                break_on_hyphens=False,
            )
    return [*lines, ""]


def format_table(probe: ProbeResult) -> str:
    """The report a person reads: the root causes first, then one row per check, the totals
    and how to rerun failures."""
    results = probe.results
    name_width = max([5, *(len(r.name) for r in results)])
    status_width = max([6, *(len(status_label(r)) for r in results)])
    where = f"{probe.target} (embedded reference server)" if probe.target.embedded else str(probe.target)
    settings = [f"seed {probe.seed}"]
    if probe.profile != "strict":
        settings.append(f"profile {probe.profile}")
    if probe.app != "search":
        settings.append(f"app {probe.app}")
    if probe.protocol != "lpjson":
        settings.append(f"protocol {probe.protocol}")
    lines = [f"probe of {where}, {', '.join(settings)}", ""]
    lines += format_root_causes(probe)
    lines.append(f"{'check':<{name_width}}  {'status':<{status_width}}  {'secs':>5}  detail")
    lines.append(f"{'-' * name_width}  {'-' * status_width}  {'-' * 5}  {'-' * 6}")
    indent = " " * (name_width + status_width + 13)
    for r in results:
        wrapped = textwrap.wrap(r.detail, _DETAIL_WIDTH) or [""]
        lines.append(
            f"{r.name:<{name_width}}  {status_label(r):<{status_width}}  {r.seconds:5.2f}  {wrapped[0]}"
        )
        lines += [indent + more for more in wrapped[1:]]
        if r.is_root_cause and r.rule is not None:
            lines += [indent + more for more in textwrap.wrap(breaks(r.rule), _DETAIL_WIDTH)]
        lines += [indent + more for more in format_attachments(r)]
    lines.append("")
    roots = len(probe.root_causes)
    totals = f"{probe.passed} passed, {probe.failed} failed, {probe.skipped} skipped in {probe.seconds:.1f}s"
    if probe.failed:
        totals += f"; {roots} root cause{'s' if roots != 1 else ''}"
    lines.append(totals)
    failures = probe.root_causes
    if failures:
        lines.append("")
        lines.append("rerun a failing check:")
        lines += [f"  {rerun_of(probe, r.name)}" for r in failures]
    return "\n".join(lines)


def to_json(probe: ProbeResult, captures: dict[str, Path] | None = None) -> dict[str, Any]:
    """The ``--json`` document (schema :data:`JSON_SCHEMA`, documented in docs/probe.md)."""
    checks = []
    for r in probe.results:
        entry = r.to_json()
        if r.status == "fail":
            entry["rerun"] = rerun_of(probe, r.name)
            if captures and r.name in captures:
                entry["capture"] = str(captures[r.name])
        checks.append(entry)
    return {
        "schema": JSON_SCHEMA,
        "target": str(probe.target),
        "embedded": probe.target.embedded,
        "protocol": probe.protocol,
        "profile": probe.profile,
        "app": probe.app,
        "seed": probe.seed,
        "idle_timeout": probe.idle_timeout,
        "timeout_scale": probe.scale,
        "command": list(probe.command) if probe.command is not None else [],
        "checks": checks,
        "passed": probe.passed,
        "failed": probe.failed,
        "skipped": probe.skipped,
        "root_causes": [r.name for r in probe.root_causes],
        "ok": probe.ok,
        "seconds": round(probe.seconds, 3),
    }


def transcript_session(transcript: Transcript, check: str, server_port: int, ipv6: bool = False) -> Session:
    """One recorded connection as a capture session: every chunk is one ``send()`` as it happened."""
    from harness.capture.writer import CLIENT, SERVER, Send, Session

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
    """Write ``DIR/<check>.pcapng`` for each failing check; return check name -> path.

    The capture puts the server on the lpjson dissector's registered port (65432,
    ``harness.capture.writer.DEFAULT_SERVER_PORT``) whatever port it really listened
    on, so Wireshark and tshark dissect it as lpjson with no option, even when the first
    header is one the heuristic for other ports would reject; the real address and port
    are in the comment of each connection's SYN. Every chunk is timestamped at the time
    the probe sent or received it (each connection's handshake just before its first chunk).
    """
    from dataclasses import replace

    from harness.capture.writer import DEFAULT_SERVER_PORT, Send, write_sessions_at

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    target = probe.target
    ipv6 = ":" in target.host
    where = f"[{target.host}]:{target.port}" if ipv6 else f"{target.host}:{target.port}"
    moved = "" if target.port == DEFAULT_SERVER_PORT else f", shown as port {DEFAULT_SERVER_PORT}"
    for r in probe.results:
        if r.status != "fail" or not r.transcripts:
            continue
        path = directory / f"{r.name}.pcapng"
        starts = [t.chunks[0].time for t in r.transcripts if t.chunks]
        origin = min(starts) if starts else 0.0
        timed = []
        for transcript in r.transcripts:
            session = transcript_session(transcript, r.name, target.port, ipv6)
            first = transcript.chunks[0].time if transcript.chunks else origin
            # transcript_session makes one Send per chunk, in order (up to its size limit)
            sends = [
                replace(send, at_us=_us(chunk.time - first)) if isinstance(send, Send) else send
                for send, chunk in zip(session.sends, transcript.chunks, strict=False)
            ]
            session = replace(
                session,
                sends=sends,
                server_port=DEFAULT_SERVER_PORT,
                comment=f"{session.comment}; server {where}{moved}",
            )
            timed.append((_us(first - origin), session))
        write_sessions_at(path, timed)
        written[r.name] = path
    return written


def _us(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))
