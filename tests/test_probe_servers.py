"""The probe against real servers: the reference (embedded and ``harness serve``) and the
deliberately wrong servers of ``tests/bad_servers.py``, each with exactly its expected verdicts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import TCP
from scapy.packet import Raw
from scapy.utils import rdpcap

from harness import decode_all
from harness.capture.writer import DEFAULT_SERVER_PORT
from harness.cli import main
from harness.probe import CHECKS, Target, run_checks
from harness.probe.runner import ProbeResult

sys.path.insert(0, str(Path(__file__).parent))
from bad_servers import (
    DiesOnBadJSONServer,
    OneRequestServer,
    SilentServer,
    SplitHeaderServer,
)

#: Slack on top of a check's own bound: the grace period and the liveness probe after a failure.
_SLACK = 4.0


def _verdicts(probe: ProbeResult) -> dict[str, tuple[str, str | None]]:
    return {r.name: (r.status, r.severity) for r in probe.results if r.status != "pass"}


def _assert_bounded(probe: ProbeResult, scale: float) -> None:
    bounds = {check.name: check.timeout * scale for check in CHECKS}
    for result in probe.results:
        assert result.seconds <= bounds[result.name] + _SLACK, (result.name, result.seconds)


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object], str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_probe_passes_the_embedded_reference_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, report, err = _run_cli(["probe", "--json"], capsys)
    assert code == 0, err
    checks = report["checks"]
    assert isinstance(checks, list) and len(checks) >= 15
    assert {c["status"] for c in checks} == {"pass"}
    assert report["passed"] == len(checks) and report["failed"] == 0
    for entry in checks:
        assert set(entry) >= {"name", "status", "detail", "seconds", "rule", "spec"}
        assert entry["spec"] == f"docs/PROTOCOL.md#{entry['rule'].lower()}"
    assert "[32/32]" in err or f"[{len(checks)}/{len(checks)}]" in err  # progress lines


@pytest.fixture
def serve_process() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server flushes this line first; EOF if it failed
        assert line.startswith("Listening on "), line
        host, _, port = line.split()[-1].rpartition(":")
        yield host, int(port)
    finally:
        proc.terminate()
        proc.wait(10)


def test_probe_passes_harness_serve(
    serve_process: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = serve_process
    code, report, err = _run_cli(["probe", host, str(port), "--json", "--quiet"], capsys)
    assert code == 0, err
    assert report["target"] == f"{host}:{port}"
    assert report["failed"] == 0 and report["passed"] == len(CHECKS) >= 15


def test_one_request_per_connection_server_fails_pipelining_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneRequestServer() as (host, port):
        code, report, err = _run_cli(
            ["probe", host, str(port), "--json", "--pcap-dir", str(tmp_path)], capsys
        )
        assert code == 1
        checks = {c["name"]: c for c in report["checks"]}  # type: ignore[union-attr]
        failed = {name for name, c in checks.items() if c["status"] == "fail"}
        # every failure is pipelining (pipeline-after-bad-content: a request pipelined behind bad
        # content), and the report names the one root cause
        assert failed == {"pipeline-2", "pipeline-100", "pipeline-after-bad-content"}
        assert {checks[name]["group"] for name in failed} == {"pipelining"}
        assert report["root_causes"] == ["pipeline-2"]  # type: ignore[index]
        for name in ("pipeline-100", "pipeline-after-bad-content"):
            assert checks[name]["cause"] == "pipeline-2"
        assert checks["pipeline-2"]["severity"] == "spec"
        assert (checks["pipeline-2"]["rule"], checks["pipeline-100"]["rule"]) == ("F3", "S1")
        assert "1 of 2 answers" in checks["pipeline-2"]["detail"]
        for name in (
            "search-morpheus",
            "search-ring",
            "search-dog",
            "search-miss",
            "binary",
            "invalid-action",
        ):
            assert checks[name]["status"] == "pass"
        # a one-line command reruns just the failing check
        rerun = f"harness probe {host} {port} --check pipeline-2 --seed 0"
        assert checks["pipeline-2"]["rerun"] == rerun and rerun in err
        code, again, _ = _run_cli([*rerun.split()[1:], "--json"], capsys)
        assert code == 1 and [c["name"] for c in again["checks"]] == ["pipeline-2"]  # type: ignore[union-attr]

    captures = sorted(p.name for p in tmp_path.iterdir())
    assert captures == ["pipeline-100.pcapng", "pipeline-2.pcapng", "pipeline-after-bad-content.pcapng"]
    # the capture holds the bytes actually sent and received, one segment per send
    packets = rdpcap(str(tmp_path / "pipeline-2.pcapng"))
    # (the capture shows the server on the dissector's port, the real one in its SYN comment)
    payloads = [(p[TCP].dport == DEFAULT_SERVER_PORT, bytes(p[Raw].load)) for p in packets if p.haslayer(Raw)]
    sent = [data for to_server, data in payloads if to_server]
    received = b"".join(data for to_server, data in payloads if not to_server)
    assert len(sent) == 1 and len(decode_all(sent[0])) == 2  # both requests in one send
    assert len(decode_all(received)) == 1  # one answer, then the server closed


def test_server_that_misreads_a_split_header_fails_the_splitting_checks() -> None:
    with SplitHeaderServer() as (host, port):
        probe = run_checks(CHECKS, Target(host, port))
    assert _verdicts(probe) == {
        "split-one-byte": ("fail", "spec"),
        "split-header": ("fail", "spec"),
        "split-random": ("fail", "spec"),
        "concurrent-interleaved": ("fail", "spec"),
        "slow-sender": ("fail", "spec"),
    }
    _assert_bounded(probe, 1.0)


def test_server_that_dies_on_bad_json_is_unsafe_and_the_rest_is_skipped() -> None:
    server = DiesOnBadJSONServer()
    with server as (host, port):
        probe = run_checks(CHECKS, Target(host, port))
        assert server.dead.is_set()
    names = [r.name for r in probe.results]
    killer = names.index("violation-header-not-utf8")  # the first input json.loads rejects
    assert all(r.status == "pass" for r in probe.results[:killer])
    assert (probe.results[killer].status, probe.results[killer].severity) == ("fail", "unsafe")
    assert "stopped accepting" in probe.results[killer].detail
    assert all(r.status == "skip" and "no longer accepts" in r.detail for r in probe.results[killer + 1 :])
    assert not probe.ok


def test_server_that_never_answers_fails_every_check_as_unsafe_within_bounds() -> None:
    scale = 0.05
    started = time.monotonic()
    with SilentServer() as (host, port):
        probe = run_checks(CHECKS, Target(host, port), scale=scale)
    elapsed = time.monotonic() - started
    assert _verdicts(probe) == {check.name: ("fail", "unsafe") for check in CHECKS}
    _assert_bounded(probe, scale)
    assert elapsed < sum(check.timeout * scale for check in CHECKS) + len(CHECKS) * 1.0
