"""Running a client against the hostile server, check by check, and judging it.

:func:`run_check` starts the hostile server on 127.0.0.1 and a free port, runs the
client command once (placeholders ``{host}`` and ``{port}``, in its own process
group, killed at the check's bound) and judges it from its exit status, its output
(the answer's marker present or not, a Python traceback) and whether it ended in
time. :func:`run_checks` runs a list of checks in order.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.clientprobe.checks import ClientCheck, Expect
from harness.clientprobe.hostile import ConnectionRecord, HostileServer
from harness.probe.wire import Transcript
from harness.supervise import describe_status, parse_tracebacks

__all__ = [
    "ClientCheckResult",
    "ClientProbeResult",
    "ClientRun",
    "format_command",
    "rerun_command",
    "run_check",
    "run_checks",
    "write_captures",
]

#: Words by which a client that exits 0 still says that something went wrong.
_ERROR_WORDS = re.compile(
    r"\b(error|invalid|fail(ed|ure|s)?|refus\w*|broke|breaks|violat\w*|malformed|unexpected|"
    r"cannot|can't|could not|timed out|timeout|closed|reset|incomplete|too large|exceed\w*)\b",
    re.IGNORECASE,
)
#: Exceptions that say the client tried to allocate a declared length.
_ALLOCATION_ERRORS = ("MemoryError", "OverflowError")
_LINE_WIDTH = 100
_KILL_GRACE = 1.0


@dataclass(frozen=True)
class ClientRun:
    """How one run of the client went."""

    argv: tuple[str, ...]
    returncode: int | None  # None: still running at the bound (then killed)
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    @property
    def tracebacks(self) -> list[str]:
        """The final exception line of each Python traceback in the output."""
        found = []
        for text in (self.stdout, self.stderr):
            found += [exc or "(cut off)" for _, _, exc in parse_tracebacks(text.splitlines())]
        return found

    def last_line(self) -> str:
        """The last non-blank line of stderr (else stdout), shortened: what the client said last."""
        for text in (self.stderr, self.stdout):
            lines = [line.strip() for line in text.splitlines() if line.strip()]
            if lines:
                line = lines[-1]
                return line if len(line) <= _LINE_WIDTH else line[: _LINE_WIDTH - 3] + "..."
        return ""

    def reports_error(self) -> bool:
        return bool(self.stderr.strip()) or _ERROR_WORDS.search(self.stdout) is not None


@dataclass
class ClientCheckResult:
    """The verdict of one check."""

    name: str
    rule: str
    status: str  # "pass", "fail" or "skip"
    detail: str
    seconds: float
    bound: float
    hint: str = ""
    run: ClientRun | None = None
    marker: str | None = None
    transcripts: list[Transcript] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "rule": self.rule,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
            "bound": round(self.bound, 3),
        }
        if self.marker is not None:
            entry["expected"] = self.marker
        if self.run is not None:
            entry["exit_status"] = self.run.returncode
            entry["stdout"] = self.run.stdout[-2000:]
            entry["stderr"] = self.run.stderr[-2000:]
        if self.status == "fail" and self.hint:
            entry["hint"] = self.hint
        return entry


@dataclass
class ClientProbeResult:
    """Every verdict of a run, with the command and the settings to rerun it."""

    command: tuple[str, ...]
    scale: float
    results: list[ClientCheckResult]
    seconds: float

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "fail" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skip" for r in self.results)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def result(self, name: str) -> ClientCheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)


def format_command(command: Sequence[str], host: str, port: int) -> list[str]:
    """``command`` with ``{host}`` and ``{port}`` replaced in every argument."""
    return [arg.replace("{host}", host).replace("{port}", str(port)) for arg in command]


def rerun_command(command: Sequence[str], name: str, scale: float) -> str:
    """The one-line command that reruns just the check ``name``."""
    words = ["harness", "probe-client", "--check", name]
    if scale != 1.0:
        words += ["--timeout", f"{scale:g}"]
    return shlex.join([*words, "--", *command])


def _run_client(argv: list[str], bound: float, env: Mapping[str, str] | None) -> ClientRun:
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: killed whole at the bound
        env=None if env is None else dict(env),
    )
    returncode: int | None
    try:
        out, err = proc.communicate(timeout=bound)
        returncode = proc.returncode
    except subprocess.TimeoutExpired:
        returncode = None
        _kill_group(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=_KILL_GRACE)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    seconds = time.monotonic() - started
    if returncode is None:
        seconds = bound
    return ClientRun(
        tuple(argv),
        returncode,
        out.decode("utf-8", "backslashreplace"),
        err.decode("utf-8", "backslashreplace"),
        seconds,
    )


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def run_check(
    check: ClientCheck,
    command: Sequence[str],
    *,
    scale: float = 1.0,
    env: Mapping[str, str] | None = None,
) -> ClientCheckResult:
    """Run the client ``command`` once against the hostile server of ``check``; judge it."""
    bound = check.bound_for(scale)
    with HostileServer(check.plan, label=check.name) as server:
        host, port = server.address
        try:
            run = _run_client(format_command(command, host, port), bound, env)
        except OSError as exc:
            return ClientCheckResult(
                check.name, check.rule, "fail", f"cannot start the client: {exc}", 0.0, bound, check.hint
            )
    records = list(server.records)
    result = _judge(check, run, records, bound)
    result.transcripts = [r.transcript for r in records]
    return result


def _judge(
    check: ClientCheck, run: ClientRun, records: list[ConnectionRecord], bound: float
) -> ClientCheckResult:
    def verdict(status: str, detail: str, marker: str | None = None) -> ClientCheckResult:
        return ClientCheckResult(
            check.name, check.rule, status, detail, run.seconds, bound, check.hint, run, marker
        )

    said = f": {run.last_line()!r}" if run.last_line() else ""
    ended = "was still running at the bound" if run.timed_out else describe_status(run.returncode or 0)
    if not records:
        return verdict("fail", f"the client never connected; it {ended}{said}")
    first = records[0]
    if first.problem is not None:
        return verdict("fail", f"{first.problem}; the client {ended}{said}")
    if first.answer is None:
        return verdict("fail", f"the client sent no complete request before the bound; it {ended}{said}")
    if first.not_applicable is not None:
        return verdict("skip", first.not_applicable)
    marker = first.answer.marker
    shown = marker in run.stdout or marker in run.stderr
    tracebacks = run.tracebacks
    took = f"{run.seconds:.2f} s"
    if check.expect is Expect.ANSWER:
        if run.timed_out:
            printed = "printed the answer but " if shown else ""
            return verdict("fail", f"{printed}was still running after {bound:.1f} s (killed){said}", marker)
        if run.returncode != 0:
            return verdict("fail", f"{ended} instead of showing the answer{said}", marker)
        if tracebacks:
            return verdict("fail", f"printed a traceback ({tracebacks[-1]}) though it exited 0", marker)
        if not shown:
            return verdict("fail", f"exited 0 without printing the answer {marker!r}{said}", marker)
        return verdict("pass", f"printed {marker!r} and exited 0 in {took}", marker)
    if run.timed_out:
        return verdict("fail", f"did not give up: still running after {bound:.1f} s (killed){said}", marker)
    if run.returncode == 0 and marker in run.stdout:
        # With a non-zero status the client did fail; its error message may quote the bytes.
        return verdict(
            "fail", f"printed the answer {marker!r} as if the response were valid, and exited 0", marker
        )
    allocation = [tb for tb in tracebacks if tb.startswith(_ALLOCATION_ERRORS)]
    if allocation:
        return verdict("fail", f"tried to allocate the declared length: {allocation[-1]}", marker)
    if run.returncode is not None and run.returncode < 0:
        return verdict("fail", f"{ended}{said}", marker)
    if run.returncode == 0:
        if tracebacks:
            return verdict(
                "fail",
                f"crashed with a traceback ({tracebacks[-1]}) but exited 0: a script cannot tell this "
                "failure from success",
                marker,
            )
        if not run.reports_error():
            return verdict("fail", f"exited 0 without reporting an error{said}", marker)
        return verdict("pass", f"reported an error in {took} (exit status 0){said}", marker)
    crashed = f" (uncaught {tracebacks[-1]})" if tracebacks else ""
    return verdict("pass", f"gave up in {took}: {ended}{crashed}{said}", marker)


def run_checks(
    checks: Sequence[ClientCheck],
    command: Sequence[str],
    *,
    scale: float = 1.0,
    env: Mapping[str, str] | None = None,
    progress: Callable[[int, int, ClientCheck, ClientCheckResult], None] | None = None,
) -> ClientProbeResult:
    """Run every check in order (one client run each)."""
    started = time.monotonic()
    results = []
    for index, check in enumerate(checks):
        result = run_check(check, command, scale=scale, env=env)
        results.append(result)
        if progress is not None:
            progress(index, len(checks), check, result)
    return ClientProbeResult(tuple(command), scale, results, time.monotonic() - started)


def write_captures(probe: ClientProbeResult, directory: Path) -> dict[str, Path]:
    """Write ``DIR/<check>.pcapng`` for each failing check that saw a connection."""
    from harness.capture.writer import write_sessions
    from harness.probe.report import transcript_session

    directory.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for r in probe.results:
        if r.status != "fail" or not r.transcripts:
            continue
        path = directory / f"{r.name}.pcapng"
        sessions = [
            transcript_session(t, f"{r.name} (harness plays the server)", t.server[1]) for t in r.transcripts
        ]
        write_sessions(path, sessions)
        written[r.name] = path
    return written
