"""``harness probe -- CMD``: the probe starts each server of the zoo and judges it under its
process monitor (crashes, tracebacks, memory), as a user runs it on their own server.

Every correct server runs the full set of checks; each buggy one runs the checks meant
for its bug (``--check`` globs, to keep the file bounded) and must fail with a root cause
that names its rule, or with what the monitor sees (a death, a traceback, memory growth).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import pytest
from zoo import NEVER_LISTENS, ZOO, ZooServer

from harness.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: The checks run on each buggy server: those meant for its bug (see tests/zoo/README.md).
CHECKS_FOR: dict[str, list[str]] = {
    "one_recv_selectors": ["split-*"],
    "recv_exact_threads": ["split-*"],
    "split_content_streams": ["split-content", "split-one-byte"],
    "split_header_protocol": ["split-header", "split-one-byte"],
    "pipeline_drop_selectors": ["pipeline-*"],
    "one_per_connection_socketserver": ["pipeline-*"],
    "guide_app_server": ["huge-length", "violation-content-too-large"],
    "no_length_limit_threads": ["huge-length", "violation-content-too-large"],
    "no_idle_timeout_streams": ["idle-timeout"],
    "unbounded_buffer_protocol": ["never-reads-small-window"],
    "memory_leak_socketserver": ["many-large-requests"],
    "duplicate_keys_threads": ["violation-duplicate-key"],
    "nan_socketserver": ["violation-non-finite-number"],
    "header_crash_threads": ["violation-header-not-object", "violation-missing-header-key"],
    "float_length_streams": ["violation-invalid-header-value", "header-content-length-*"],
    "byteorder_unchecked_protocol": ["header-byteorder-*"],
    "peer_codec_streams": ["violation-unsupported-encoding", "codec-*"],
    "traceback_survives_threads": ["violation-content-not-decodable"],
    "binary_mangled_threads": ["binary-not-utf8"],
    "latin1_request_socketserver": ["search-dog"],
    "bad_content_closes_selectors": ["violation-content-*", "pipeline-after-bad-content"],
    "exit_on_bad_header_selectors": ["violation-header-not-json"],
    "crash_on_missing_value_selectors": ["search-no-value"],
    "half_close_selectors": ["half-close"],
    "error_shape_protocol": ["violation-content-not-json", "error-message-shape"],
}

#: The zoo's idle timeout is 3 s (tests/zoo/zoolib.py): the probe is told to accept up to this
#: long, which adds its idle-timeout check (L2 is not judged without --idle-timeout).
IDLE_TIMEOUT = ["--idle-timeout", "5"]

BUGGY = [server for server in ZOO.values() if not server.correct]
CORRECT = [server for server in ZOO.values() if server.correct]
GUIDE_OK = [server for server in ZOO.values() if server.guide_profile_ok and not server.correct]


def probe(
    capsys: pytest.CaptureFixture[str], server: ZooServer, *options: str
) -> tuple[int, dict[str, Any], str]:
    """``harness probe --json OPTIONS -- python SERVER.py {host} {port}``: status, report, stderr."""
    capsys.readouterr()
    code = main(["probe", "--json", "--quiet", *options, "--", *server.command()])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else {}, err


def failures(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in report["checks"] if c["status"] == "fail"}


def test_checks_for_names_every_buggy_server() -> None:
    assert set(CHECKS_FOR) == {server.name for server in BUGGY}


@pytest.mark.parametrize("server", CORRECT, ids=lambda s: s.name)
def test_correct_server_passes_every_check(capsys: pytest.CaptureFixture[str], server: ZooServer) -> None:
    code, report, err = probe(capsys, server, *IDLE_TIMEOUT)
    assert failures(report) == {}, err
    assert report["ok"] and code == 0
    assert "idle-timeout" in {c["name"] for c in report["checks"]} and report["idle_timeout"] == 5
    assert report["skipped"] == 0 and report["passed"] == len(report["checks"]) > 60
    assert report["command"] == server.command()


@pytest.mark.parametrize("server", GUIDE_OK, ids=lambda s: s.name)
def test_guide_profile_passes_servers_that_only_deviate_as_the_guide(
    capsys: pytest.CaptureFixture[str], server: ZooServer
) -> None:
    code, report, err = probe(capsys, server, "--profile", "guide")
    assert failures(report) == {}, err
    assert code == 0 and report["profile"] == "guide"


@pytest.mark.parametrize("server", BUGGY, ids=lambda s: s.name)
def test_buggy_server_fails_the_check_meant_for_it(
    capsys: pytest.CaptureFixture[str], server: ZooServer
) -> None:
    globs = [word for glob in CHECKS_FOR[server.name] for word in ("--check", glob)]
    code, report, err = probe(capsys, server, *IDLE_TIMEOUT, *globs)
    failed = failures(report)
    assert code == 1 and failed, err
    assert report["root_causes"], failed
    rules = {server.rule, *server.also_breaks}
    meant = [r for r in failed.values() if r["rule"] in rules or r["name"] in server.check.split(", ")]
    by_monitor = [
        r
        for r in failed.values()
        if (server.dies and r["severity"] == "unsafe" and "exited with status" in r["detail"])
        or (server.memory_grows and r["severity"] == "unsafe" and "RSS grew" in r["detail"])
        or (server.traceback and "the server raised" in r["detail"])
    ]
    assert meant or by_monitor, f"{server.name} ({server.rule}): failures " + "; ".join(
        f"{r['name']} ({r['rule']}): {r['detail']}" for r in failed.values()
    )


def test_crash_on_one_input_is_unsafe_with_status_and_the_server_is_restarted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ZOO["crash_on_missing_value_selectors"]
    code, report, _ = probe(
        capsys, server, "--check", "search-morpheus", "--check", "search-no-value", "--check", "binary"
    )
    assert code == 1
    names = [c["name"] for c in report["checks"]]
    assert names == ["search-morpheus", "search-no-value", "binary"]
    crashed = failures(report)
    assert list(crashed) == ["search-no-value"]
    detail = crashed["search-no-value"]["detail"]
    assert crashed["search-no-value"]["severity"] == "unsafe"
    assert "the server exited with status 1 after it raised KeyError: 'value'" in detail
    assert "while handling search-no-value's request search None" in detail
    assert "last stderr" in detail
    assert "KeyError" in crashed["search-no-value"]["attachments"]["server output"]
    # restarted: the check after the crash still runs, and passes
    assert report["checks"][2]["status"] == "pass"


def test_traceback_that_the_server_survives_fails_the_check_unless_allowed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = ZOO["traceback_survives_threads"]
    checks = ["--check", "search-morpheus", "--check", "violation-content-not-decodable"]
    code, report, _ = probe(capsys, server, *checks)
    failed = failures(report)
    assert code == 1 and set(failed) == {"violation-content-not-decodable"}
    detail = failed["violation-content-not-decodable"]["detail"]
    assert "the server raised UnicodeDecodeError" in detail
    assert "Traceback" in failed["violation-content-not-decodable"]["attachments"]["server output"]
    # with the tracebacks allowed, the wrong error code still fails it, but not the traceback
    code, report, _ = probe(capsys, server, "--allow-tracebacks", *checks)
    failed = failures(report)
    assert code == 1 and "the server raised" not in failed["violation-content-not-decodable"]["detail"]
    assert "Traceback" in failed["violation-content-not-decodable"]["attachments"]["server output"]


def test_server_that_never_listens_is_exit_2_with_one_line_and_its_stderr_tail(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    code = main(["probe", "--start-timeout", "2", "--", *NEVER_LISTENS.command()])
    elapsed = time.monotonic() - started
    _, err = capsys.readouterr()
    assert code == 2
    assert elapsed < 6.0
    first, *rest = err.splitlines()
    assert first.startswith("harness probe: the server under test did not start: ")
    assert "accepted no connection" in first and "within 2 s" in first
    assert rest and ("stderr" in rest[0])


def test_server_whose_memory_grows_fails_the_memory_check_as_unsafe(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, report, _ = probe(capsys, ZOO["memory_leak_socketserver"], "--check", "many-large-requests")
    check = failures(report)["many-large-requests"]
    assert code == 1 and check["severity"] == "unsafe" and check["rule"] == "L3"
    assert "RSS grew by" in check["detail"] and "limit 64 MiB" in check["detail"]
    assert "server memory" in check["attachments"]
    # a higher bound lets the same growth pass
    code, report, _ = probe(
        capsys, ZOO["memory_leak_socketserver"], "--check", "many-large-requests", "--rss-limit", "1024"
    )
    assert code == 0, report


def test_bad_server_command_usage_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--"]) == 2
    assert main(["probe", "127.0.0.1", "9", "--", sys.executable, "x.py"]) == 2
    assert main(["probe", "--rss-limit", "0", "--", sys.executable, "x.py"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 3 and "Traceback" not in err
