"""The guide's own server (tests/guide/app_server.py + libserver.py, as the guide writes them)
probed with ``--profile guide`` and with the default strict profile.

Under ``--profile guide`` it must fail only its real robustness bugs, and nothing about
pipelining, lax JSON or codecs:

- it waits for any declared content-length: no limit (``huge-length``, and
  ``violation-content-too-large`` as its consequence);
- it never answers a request whose content is falsy: ``write()`` tests ``if self.request``,
  so an empty binary content (``b""``), like ``{}`` or ``[]`` in text/json, leaves the
  connection in write mode forever, with the selector loop spinning (``empty-content``).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli import main
from harness.probe import CHECKS

GUIDE_SERVER = Path(__file__).parent / "guide" / "app_server.py"

#: The checks the guide's server fails under --profile guide: its real robustness bugs.
GUIDE_FAILURES = {"empty-content", "huge-length", "violation-content-too-large"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def guide_server() -> Iterator[tuple[str, int]]:
    """The guide's app-server.py on a free port (it cannot report the port it got from port 0)."""
    for _ in range(3):
        port = _free_port()
        proc = subprocess.Popen(
            [sys.executable, str(GUIDE_SERVER), "127.0.0.1", str(port)],
            stdout=subprocess.DEVNULL,  # it prints every byte it sends
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 10.0
            while proc.poll() is None and time.monotonic() < deadline and not _accepts(port):
                time.sleep(0.05)
            if proc.poll() is None and _accepts(port):
                yield "127.0.0.1", port
                return
        finally:
            proc.kill()
            proc.wait(10)
    pytest.fail("the guide's server did not start")


def _probe(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, dict[str, object]], dict[str, object]]:
    code = main(argv)
    report = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in report["checks"]}, report


def test_guide_server_under_the_guide_profile_fails_only_its_robustness_bugs(
    guide_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = guide_server
    code, checks, report = _probe(
        ["probe", host, str(port), "--profile", "guide", "--json", "--quiet"], capsys
    )
    assert code == 1
    assert len(checks) == len(CHECKS)
    failed = {name for name, c in checks.items() if c["status"] == "fail"}
    assert failed == GUIDE_FAILURES
    assert all(checks[name]["severity"] == "unsafe" for name in failed)
    assert report["root_causes"] == ["empty-content", "huge-length"]
    assert checks["violation-content-too-large"]["cause"] == "huge-length"
    assert str(checks["violation-content-too-large"]["detail"]).startswith("fails because huge-length fails")
    # one request per connection: judged "closes after one answer", not a failure
    for name in ("pipeline-2", "pipeline-100", "answer-before-error"):
        assert checks[name]["status"] == "pass", checks[name]
    assert checks["pipeline-2"]["notes"] == ["closes after one answer"]
    assert "closes after one answer" in str(checks["pipeline-100"]["detail"])
    # lax JSON and any codec: accepted as the guide reads them
    for name in ("violation-non-finite-number", "violation-duplicate-key", "codec-utf-7", "codec-cp500"):
        assert checks[name]["status"] == "pass", checks[name]
    assert report["profile"] == "guide"


def test_guide_server_under_the_strict_profile_fails_the_spec(
    guide_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = guide_server
    code, checks, _ = _probe(
        [
            "probe",
            host,
            str(port),
            "--json",
            "--quiet",
            "--check",
            "pipeline-*",
            "--check",
            "violation-*",
            "--check",
            "codec-utf-7",
            "--skip",
            "violation-content-too-large",
        ],
        capsys,
    )
    assert code == 1
    failed = {name for name, c in checks.items() if c["status"] == "fail"}
    assert {"pipeline-2", "pipeline-100", "pipeline-after-bad-content", "codec-utf-7"} <= failed
    # the canonical NaN and repeated content-length: a lax reader hangs on them
    assert {"violation-non-finite-number", "violation-duplicate-key"} <= failed
    # content errors close the connection instead of answering with an error message (S3)
    assert checks["violation-content-not-json"]["status"] == "fail"
    assert "instead of answering with the error message" in str(
        checks["violation-content-not-json"]["detail"]
    )
    assert checks["pipeline-100"]["cause"] == "pipeline-2"
    assert "violation-content-too-large" not in checks
