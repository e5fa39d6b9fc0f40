"""harness probe-client: buggy clients caught by the check meant for each, correct ones pass.

The clients live in tests/clients/ (one bug each; the *_blocking.py ones are copies of
correct_blocking.py with that bug) and tests/guide/ (the guide's own client). Every run is
bounded: --timeout scale 0.1 makes a check's bound 1 s plus 3 s to start.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.clientprobe import CHECKS, answer_for, run_check, run_checks, select_checks
from harness.clientprobe.responses import VIOLATING
from harness.message import Message
from harness.violations import VIOLATIONS, first_error

HERE = Path(__file__).resolve().parent
CLIENTS = HERE / "clients"
GUIDE_CLIENT = HERE / "guide" / "app_client.py"
SCALE = 0.1
SEARCH = ["{host}", "{port}", "search", "morpheus"]
BINARY = ["{host}", "{port}", "binary", "hello"]


def client(name: str, *args: str) -> list[str]:
    return [sys.executable, str(CLIENTS / f"{name}.py"), *(args or SEARCH)]


HARNESS_REQUEST = [sys.executable, "-m", "harness", "request", *SEARCH, "--timeout", "0.5"]

#: Each buggy client, the request it sends, and the checks meant to catch it.
BUGGY = [
    ("one_recv_blocking", SEARCH, ["split-prefix"]),
    ("no_timeout_blocking", SEARCH, ["silent"]),
    ("huge_length_asyncio", SEARCH, ["huge-length"]),
    ("traceback_exit0_selectors", SEARCH, ["violation-header-not-json"]),
    (
        "lax_json_blocking",
        SEARCH,
        ["violation-duplicate-key", "violation-non-finite-number", "violation-content-not-json"],
    ),
    ("utf8_binary_asyncio", BINARY, ["binary"]),
    ("coalesced_breaks_blocking", SEARCH, ["coalesced"]),
    ("close_early_hangs_blocking", SEARCH, ["close-early"]),
]


@pytest.mark.parametrize(("name", "args", "checks"), BUGGY, ids=[b[0] for b in BUGGY])
def test_each_buggy_client_is_caught_by_its_check_and_passes_the_baseline(
    name: str, args: list[str], checks: list[str]
) -> None:
    command = client(name, *args)
    baseline = run_check(CHECKS["whole"], command, scale=SCALE)
    assert baseline.status == "pass", baseline.detail
    for check in checks:
        result = run_check(CHECKS[check], command, scale=SCALE)
        assert result.status == "fail", f"{check}: {result.detail}"
        assert result.transcripts, "a failure keeps the connection for its capture"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(HARNESS_REQUEST, id="harness-request"),
        pytest.param(client("harness_client"), id="harness-Client"),
        pytest.param(client("correct_blocking"), id="correct-blocking"),
    ],
)
def test_correct_clients_pass_every_check(command: list[str]) -> None:
    probe = run_checks(list(CHECKS.values()), command, scale=SCALE)
    failures = {r.name: r.detail for r in probe.results if r.status == "fail"}
    assert not failures
    assert [r.name for r in probe.results if r.status == "skip"] == ["binary"]


def test_a_correct_asyncio_client_refuses_every_broken_answer() -> None:
    checks = select_checks(
        ["violation-*", "huge-length", "close-early", "reset", "silent", "split-content"], []
    )
    probe = run_checks(checks, client("correct_asyncio"), scale=SCALE)
    assert probe.ok, {r.name: r.detail for r in probe.results if r.status == "fail"}


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(
            [sys.executable, "-m", "harness", "request", *BINARY, "--timeout", "0.5"], id="harness-request"
        ),
        pytest.param(client("harness_client", *BINARY), id="harness-Client"),
        pytest.param(client("correct_blocking", *BINARY), id="correct-blocking"),
    ],
)
def test_correct_clients_show_binary_content_that_is_not_utf8(command: list[str]) -> None:
    probe = run_checks(
        select_checks(["binary", "split-content", "violation-zero*"], []), command, scale=SCALE
    )
    assert probe.ok, {r.name: r.detail for r in probe.results}
    assert probe.skipped == 0


def test_the_guide_client_has_its_real_weaknesses_reported() -> None:
    probe = run_checks(list(CHECKS.values()), [sys.executable, str(GUIDE_CLIENT), *SEARCH], scale=SCALE)
    status = {r.name: r.status for r in probe.results}
    # It buffers correctly: every splitting, dripping and trailing bytes are fine.
    for name in [
        "whole",
        "split-prefix",
        "split-header",
        "split-content",
        "split-boundaries",
        "coalesced",
        "drip",
    ]:
        assert status[name] == "pass", probe.result(name).detail
    # No timeout: it never gives up on a silent server or a huge declared length.
    assert "did not give up" in probe.result("silent").detail
    assert "did not give up" in probe.result("huge-length").detail
    # Lax JSON: NaN and duplicate keys pass, and it prints the answer.
    assert "printed the answer" in probe.result("violation-non-finite-number").detail
    assert "printed the answer" in probe.result("violation-duplicate-key").detail
    # A broken response or connection is a traceback with exit status 0.
    assert "printed the answer" in probe.result("violation-unsupported-encoding").detail
    for name in ["close-early", "reset", "violation-header-not-json"]:
        assert "exited 0" in probe.result(name).detail, probe.result(name).detail


def test_every_spoiled_answer_is_the_violation_it_names() -> None:
    for request in [
        Message.from_json({"action": "search", "value": "morpheus"}),
        Message.from_bytes(b"binaryhello"),
    ]:
        answer = answer_for(request)
        for code, (spoil, json_only) in VIOLATING.items():
            if json_only and not answer.is_json:
                continue
            error = first_error(spoil(answer))
            assert error is not None and error.code == code, (code, error)
    assert set(VIOLATING) == set(VIOLATIONS) - {"content-too-large"}  # that one is huge-length


def test_the_marker_is_computed_from_the_request_the_client_sent() -> None:
    assert answer_for(Message.from_json({"action": "search", "value": "morpheus"})).marker == (
        "Follow the white rabbit."
    )
    assert answer_for(Message.from_json({"action": "search", "value": "xyz"})).marker == "No match for 'xyz'."
    assert answer_for(Message.from_bytes(b"binaryhello")).marker == "First 10 bytes of request: binaryhell"


def _cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", "probe-client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_usage_errors_are_one_line_and_exit_2() -> None:
    for args in (
        ["--check", "nope", "--", "x", "{port}"],
        ["--", "x", "{host}"],
        [],
        ["--timeout", "0", "--", "x", "{port}"],
    ):
        done = _cli(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_cli_lists_the_checks() -> None:
    done = _cli("--list")
    assert done.returncode == 0
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == list(CHECKS)


def test_cli_failure_has_rerun_line_capture_and_exit_1(tmp_path: Path) -> None:
    command = client("one_recv_blocking")
    done = _cli(
        "--check",
        "split-prefix",
        "--check",
        "whole",
        "--timeout",
        "0.1",
        "--pcap-dir",
        str(tmp_path),
        "--json",
        "--",
        *command,
    )
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    entry = {c["name"]: c for c in report["checks"]}["split-prefix"]
    assert entry["status"] == "fail"
    assert entry["rerun"].startswith("harness probe-client --check split-prefix --timeout 0.1 -- ")
    assert Path(entry["capture"]).stat().st_size > 0
    assert report["passed"] == 1 and report["failed"] == 1


def test_cli_passes_harness_request_with_exit_0() -> None:
    done = _cli("--check", "split-prefix", "--check", "silent", "--timeout", "0.1", "--", *HARNESS_REQUEST)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout
