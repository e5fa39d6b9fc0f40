"""``harness probe`` as a command: listing, selection, usage errors, the readable table."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from harness.cli import main
from harness.probe import CHECKS

sys.path.insert(0, str(Path(__file__).parent))
from bad_servers import OneRequestServer


def test_list_names_every_check(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--list"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()]
    assert listed == [check.name for check in CHECKS]
    rules = [line.split()[2] for line in out.splitlines()]
    assert rules == [check.rule for check in CHECKS]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["probe", "--check", "no-such-check"], "unknown check(s): no-such-check"),
        (["probe", "127.0.0.1"], "give both HOST and PORT"),
        (["probe", "--timeout", "0"], "--timeout must be > 0"),
        (["probe", "--timeout", "nan"], "--timeout must be > 0 and finite"),
        (["probe", "--timeout", "inf"], "--timeout must be > 0 and finite"),
    ],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_unreachable_target_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["probe", "127.0.0.1", str(port), "--timeout", "0.2"]) == 2
    assert f"cannot connect to 127.0.0.1:{port}" in capsys.readouterr().err


def test_table_shows_verdicts_severity_and_rerun_lines(capsys: pytest.CaptureFixture[str]) -> None:
    with OneRequestServer() as (host, port):
        code = main(
            ["probe", host, str(port), "--check", "search-ring", "--check", "pipeline-2", "--seed", "5"]
        )
    out, err = capsys.readouterr()
    assert code == 1
    rows = {
        line.split()[0]: line for line in out.splitlines() if line.startswith(("search-ring", "pipeline-2"))
    }
    assert " pass " in rows["search-ring"]
    assert "FAIL (spec)" in rows["pipeline-2"] and "1 of 2 answers" in rows["pipeline-2"]
    assert "1 passed, 1 failed, 0 skipped" in out
    assert f"harness probe {host} {port} --check pipeline-2 --seed 5" in out
    assert "[2/2] pipeline-2: FAIL (spec)" in err  # progress on stderr
    # the failing verdict names the rule it breaks and where to read it; a pass does not
    lines = out.splitlines()
    below = lines[lines.index(rows["pipeline-2"]) + 1]
    assert below.strip().startswith("breaks F3 (docs/PROTOCOL.md#f3): messages follow back to back")
    assert out.count("breaks ") == 1
    assert "breaks F3 (docs/PROTOCOL.md#f3)" in err


def test_unwritable_pcap_dir_still_reports_the_verdicts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")  # a file where the capture directory should be
    with OneRequestServer() as (host, port):
        code = main(["probe", host, str(port), "--check", "pipeline-2", "--pcap-dir", str(blocker / "caps")])
    out, err = capsys.readouterr()
    assert code == 1
    assert "cannot write captures to" in err
    assert "0 passed, 1 failed, 0 skipped" in out


def test_embedded_single_check_rerun_needs_no_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--check", "split-header", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(embedded reference server)" in out and "1 passed, 0 failed" in out


def test_idle_timeout_option_adds_the_l2_check_and_its_rerun_keeps_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from harness.probe.report import rerun_command
    from harness.probe.runner import Target

    assert main(["probe", "--list", "--idle-timeout", "7"]) == 0
    listed = capsys.readouterr().out
    assert "idle-timeout" in listed and "cut off within 7 s" in listed
    assert main(["probe", "--list"]) == 0
    assert "idle-timeout" not in capsys.readouterr().out  # L2 is judged only when asked
    rerun = rerun_command(Target("127.0.0.1", 9), "idle-timeout", 0, 1.0, idle_timeout=7.0)
    assert rerun == "harness probe 127.0.0.1 9 --check idle-timeout --seed 0 --idle-timeout 7"
    for bad, says in [
        ("0", "must be a duration > 0, not '0'"),
        ("nan", "must be a duration > 0, not 'nan'"),
        ("4000", "the idle timeout must be > 0 and at most 3600 seconds"),
    ]:
        assert main(["probe", "--idle-timeout", bad]) == 2
        assert says in capsys.readouterr().err
