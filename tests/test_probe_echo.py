"""``harness probe --protocol echo``: the echo checks against real echo servers, each a process.

The guide's two echo servers (tests/guide/, as published) get the verdicts their code
earns, asserted check by check; each buggy server of tests/echo_servers.py is caught by
the check meant for its bug; the correct ones pass every check.

Every server runs as its own process (``python SERVER HOST PORT``) on a port chosen
free beforehand; readiness is read from /proc/net/tcp rather than by connecting, since
the guide's echo server serves exactly one connection.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from harness.cli import main
from harness.probe.echo import ECHO_CHECKS, EchoCheck, find_echo_check, mismatch, random_splittings
from harness.probe.runner import CheckResult, Target, run_check, run_checks
from harness.spec import RULES

sys.path.insert(0, str(Path(__file__).resolve().parent))
from echo_servers import CORRECT, SERVERS

TESTS = Path(__file__).resolve().parent
GUIDE_ECHO = TESTS / "guide" / "echo_server.py"
GUIDE_MULTICONN = TESTS / "guide" / "multiconn_server.py"
ECHO_SERVERS = TESTS / "echo_servers.py"
_TCP_TABLE = Path("/proc/net/tcp")

pytestmark = pytest.mark.skipif(
    not _TCP_TABLE.exists(), reason="readiness is read from /proc/net/tcp (Linux)"
)

#: Bounds of the checks that wait out a silence are halved where a failure is expected.
FAST = 0.5


# -- servers as processes ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _listening(port: int) -> bool:
    """A socket in state LISTEN on 127.0.0.1:port (without connecting to it)."""
    local = f"0100007F:{port:04X}"
    for line in _TCP_TABLE.read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[3] == "0A":
            return True
    return False


@dataclass
class Process:
    proc: subprocess.Popen[bytes]
    target: Target
    stderr: IO[bytes]

    def stop(self) -> str:
        """Kill it (if still running) and return its last stderr line."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self.stderr.seek(0)
        lines = self.stderr.read().decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""


@contextmanager
def serving(script: Path, *args: str) -> Iterator[Process]:
    port = _free_port()
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(script), *args, "127.0.0.1", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        process = Process(proc, Target("127.0.0.1", port), stderr)
        try:
            deadline = time.monotonic() + 10
            while not _listening(port):
                assert proc.poll() is None, f"{script.name} exited: {process.stop()}"
                assert time.monotonic() < deadline, f"{script.name} never listened on {port}"
                time.sleep(0.01)
            yield process
        finally:
            process.stop()


def _verdicts(script: Path, *args: str, scale: float = 1.0) -> dict[str, CheckResult]:
    """Every echo check, each against a fresh process of the server."""
    results = {}
    for check in ECHO_CHECKS:
        with serving(script, *args) as server:
            results[check.name] = run_check(check, server.target, scale=scale)
    return results


def _failed(results: dict[str, CheckResult]) -> dict[str, str | None]:
    return {name: r.severity for name, r in results.items() if r.status == "fail"}


# -- the checks themselves ---------------------------------------------------------------


def test_echo_checks_each_name_an_echo_rule_and_give_a_hint() -> None:
    names = [check.name for check in ECHO_CHECKS]
    assert len(names) == len(set(names))
    assert all(name.startswith("echo-") for name in names)
    for check in ECHO_CHECKS:
        assert isinstance(check, EchoCheck)
        assert check.rule in RULES and RULES[check.rule].section == "Byte echo", check.name
        assert check.hint and "\n" not in check.hint, check.name
    echo_rules = {rule.id for rule in RULES.values() if rule.section == "Byte echo"}
    assert {check.rule for check in ECHO_CHECKS} == echo_rules
    memory = {check.name for check in ECHO_CHECKS if check.measures_memory}
    assert "echo-never-reads" in memory and "echo-small" not in memory


def test_mismatch_names_the_first_wrong_byte_and_whose_bytes_they_are() -> None:
    want = bytes(range(100))
    assert mismatch(want[:40], want) is None
    assert mismatch(want + b"!", want) == "1 byte more than were sent"
    other = b"\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7"
    problem = mismatch(want[:10] + other, want, {"connection 2": b"xx" + other})
    assert problem is not None
    assert problem.startswith("byte 10 differs") and "(bytes connection 2 sent)" in problem
    dropped = want[:30] + want[50:]
    assert "(bytes sent at 50: the 20 bytes before them were lost)" in (mismatch(dropped, want) or "")
    repeated = want[:60] + want[10:20]
    assert "(bytes sent at 10, again: out of order)" in (mismatch(repeated, want) or "")


def test_random_splittings_are_seeded_and_cover_their_payload() -> None:
    first = random_splittings(3)
    assert first == random_splittings(3) != random_splittings(4)
    for data, chunks in first:
        assert b"".join(chunks) == data
        assert all(chunks)


def test_find_echo_check() -> None:
    assert find_echo_check("echo-large").rule == "X3"
    with pytest.raises(KeyError):
        find_echo_check("search-ring")


# -- correct servers pass ------------------------------------------------------------------


@pytest.mark.parametrize("name", CORRECT)
def test_correct_echo_server_passes_every_check(name: str) -> None:
    with serving(ECHO_SERVERS, name) as server:
        probe = run_checks(ECHO_CHECKS, server.target)
    failures = {r.name: r.detail for r in probe.results if r.status != "pass"}
    assert not failures
    assert probe.seconds < 8, f"{name}: {probe.seconds:.1f}s"


# -- each bug caught by its check ------------------------------------------------------------

#: server -> (the check meant for its bug, severity, what the detail says)
BUGS = {
    "first-recv-only": ("echo-one-byte", "spec", "of 56 bytes echoed, then silence"),
    "text-mode": ("echo-binary", "spec", "byte 128 differs"),
    "send-ignores-count": ("echo-large", "spec", "lost"),  # a gap, or the end, never came back
    "shared-state": ("echo-interleaved", "spec", " of 10"),  # bytes crossed to or from connection N of 10
    "one-at-a-time": (
        "echo-slow-sender",
        "unsafe",
        "another client while the slow one is mid-stream: no echo",
    ),
    "keeps-open": ("echo-half-close", "spec", "the server never closes it"),
    "unbounded": (
        "echo-never-reads",
        "unsafe",
        "the server keeps reading a client whose echo it cannot send",
    ),
}


def test_every_buggy_server_has_a_check_and_every_server_a_role() -> None:
    assert set(BUGS) | set(CORRECT) == set(SERVERS)
    assert not set(BUGS) & set(CORRECT)


@pytest.mark.parametrize("name", list(BUGS))
def test_buggy_echo_server_is_caught_by_its_check(name: str) -> None:
    check_name, severity, phrase = BUGS[name]
    with serving(ECHO_SERVERS, name) as server:
        result = run_check(find_echo_check(check_name), server.target, scale=FAST)
    assert result.status == "fail", result.detail
    assert result.severity == severity, result.detail
    assert phrase in result.detail
    assert result.rule == find_echo_check(check_name).rule


# -- the guide's servers -----------------------------------------------------------------------

#: The guide's echo-server.py, one fresh process per check: it serves one connection and
#: exits, so every check that needs a second connection fails, as unsafe (nobody answers);
#: with its single connection it echoes correctly, whatever the split or size, and closes
#: after the client's FIN.
GUIDE_ECHO_FAILS = {
    "echo-serves-again": "unsafe",  # connection 2 is refused or reset: the server has exited
    "echo-concurrent": "unsafe",  # connection 2 of 50 waits while connection 1 is served
    "echo-interleaved": "unsafe",  # the same
    "echo-slow-sender": "unsafe",  # another client waits for the slow one
    "echo-reset": "unsafe",  # after the bystander (its only connection) the server is gone
    "echo-never-reads": "unsafe",  # blocked in sendall() to the non-reader, it serves no one else
}


def test_guide_echo_server_fails_every_check_that_needs_a_second_connection() -> None:
    results = _verdicts(GUIDE_ECHO, scale=FAST)
    assert _failed(results) == GUIDE_ECHO_FAILS, {n: r.detail for n, r in results.items()}
    assert "the server stopped serving after connection 1 ended" in results["echo-serves-again"].detail
    assert "no echo" in results["echo-concurrent"].detail
    assert "8.0 MiB echoed whole" in results["echo-large"].detail
    assert "then closed" in results["echo-half-close"].detail


def test_guide_echo_server_in_one_run_is_used_up_before_the_first_check() -> None:
    # The runner connects once to see that the target is up: that was the server's only
    # connection, so the first check cannot connect and the rest are skipped.
    with serving(GUIDE_ECHO) as server:
        probe = run_checks(ECHO_CHECKS, server.target)
        server.proc.wait(5)
        assert server.proc.returncode == 0  # it exited normally, after one connection
    first, *rest = probe.results
    assert (first.name, first.status, first.severity) == ("echo-serves-again", "fail", "unsafe")
    assert "the server stopped serving after the probe's first connection ended" in first.detail
    assert {r.status for r in rest} == {"skip"}
    assert all("no longer accepts connections" in r.detail for r in rest)


#: The guide's multiconn-server.py echoes correctly, concurrently and whole; two bugs:
#: a client's reset raises out of recv()/send() and ends the whole server, and it keeps
#: reading a client that never reads, holding that client's echo in data.outb.
GUIDE_MULTICONN_FAILS = {"echo-reset": "unsafe", "echo-never-reads": "unsafe"}


def test_guide_multiconn_server_dies_on_a_reset_and_buffers_a_non_reader_without_bound() -> None:
    with serving(GUIDE_MULTICONN) as server:
        probe = run_checks(ECHO_CHECKS, server.target)
        last_words = server.stop()
    results = {r.name: r for r in probe.results}
    assert _failed(results) == {"echo-reset": "unsafe"}, {n: r.detail for n, r in results.items()}
    assert "ConnectionResetError" in last_words
    assert results["echo-never-reads"].status == "skip"  # the server is gone
    # On a fresh server, the non-reader: it keeps reading (and then dies of the reset).
    with serving(GUIDE_MULTICONN) as server:
        never = run_check(find_echo_check("echo-never-reads"), server.target)
    assert _failed(results) | _failed({never.name: never}) == GUIDE_MULTICONN_FAILS
    assert "the server was still reading" in never.detail or "without stopping" in never.detail
    assert "after the non-reader reset its connection" in never.detail


# -- the command line -------------------------------------------------------------------------


def test_list_with_protocol_echo_shows_the_echo_checks_and_their_rules(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["probe", "--protocol", "echo", "--list"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert [row[0] for row in rows] == [check.name for check in ECHO_CHECKS]
    assert [row[2] for row in rows] == [check.rule for check in ECHO_CHECKS]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "--protocol", "echo"], "the embedded server speaks lpjson: give HOST PORT"),
        (["probe", "--protocol", "echo", "--check", "search-ring", "127.0.0.1", "1"], "unknown check(s)"),
    ],
)
def test_echo_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_probe_protocol_echo_reports_failures_with_hint_rule_and_rerun(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with serving(ECHO_SERVERS, "keeps-open") as server:
        host, port = server.target.host, str(server.target.port)
        code = main(
            ["probe", "--protocol", "echo", host, port, "--check", "echo-small", "--check", "echo-half-close"]
        )
        out, err = capsys.readouterr()
        assert code == 1
        assert "hint: when recv() returns b'', send what is left, then close() the socket" in err
        assert "breaks X5 (docs/PROTOCOL.md#x5)" in err
        rerun = f"harness probe {host} {port} --protocol echo --check echo-half-close --seed 0"
        assert rerun in err and rerun in out
        assert main(["probe", "--protocol", "echo", host, port, "--check", "echo-small", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(c["name"], c["status"], c["rule"]) for c in report["checks"]] == [("echo-small", "pass", "X2")]
