"""What ``harness probe`` hands to CI: JUnit XML, the versioned JSON report (validated against
docs/probe.md's tables), exit statuses, one-line usage errors, and its speed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from harness.cli import main
from harness.probe import CHECKS, Target, run_checks
from harness.probe.junit import to_junit_xml
from harness.probe.runner import CheckResult, ProbeResult

sys.path.insert(0, str(Path(__file__).parent))
from bad_servers import OneRequestServer, SilentServer

DOCS = Path(__file__).parent.parent / "docs" / "probe.md"
_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (float, int),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "object": (dict,),
    "str or null": (str, type(None)),
    "float or null": (float, int, type(None)),
}


def _documented_fields() -> tuple[dict[str, str], dict[str, str]]:
    """The two tables of docs/probe.md's "The JSON report" section: field -> type."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## The JSON report (schema 1)", 1)[1].split("\n## ", 1)[0]
    tables: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in section.splitlines():
        match = re.match(r"\| `([a-z_]+)` \| ([a-z ]+) \|", line)
        if match:
            if current is None:
                current = {}
                tables.append(current)
            current[match.group(1)] = match.group(2).strip()
        elif not line.startswith("|"):
            current = None
    top, check = tables
    return top, check


def _validate(report: dict[str, Any]) -> None:
    top, per_check = _documented_fields()
    assert set(report) == set(top), "every field documented, every documented field present"
    for key, kind in top.items():
        assert isinstance(report[key], _TYPES[kind]), (key, report[key])
    assert report["schema"] == 1
    always = {"name", "group", "status", "detail", "seconds", "rule", "spec"}
    on_failure = {"severity", "hint", "cause", "rerun"}
    for entry in report["checks"]:
        assert set(entry) <= set(per_check), set(entry) - set(per_check)
        assert always <= set(entry)
        if entry["status"] == "fail":
            assert on_failure <= set(entry)
        else:
            assert not on_failure & set(entry)
        for key, value in entry.items():
            assert isinstance(value, _TYPES[per_check[key]]), (key, value)


def test_json_report_follows_the_documented_schema(capsys: pytest.CaptureFixture[str]) -> None:
    with OneRequestServer() as (host, port):
        code = main(
            ["probe", host, str(port), "--json", "--quiet", "--check", "search-*", "--check", "pipeline-*"]
        )
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    _validate(report)
    assert report["root_causes"] == ["pipeline-2"] and report["ok"] is False
    assert main(["probe", "--json", "--quiet", "--profile", "guide", "--check", "pipeline-2"]) == 0
    passing = json.loads(capsys.readouterr().out)
    _validate(passing)
    assert passing["ok"] is True and passing["profile"] == "guide"


def test_junit_xml_has_one_testcase_per_check_and_names_the_failures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "probe.xml"
    with OneRequestServer() as (host, port):
        code = main(
            [
                "probe",
                host,
                str(port),
                "--quiet",
                "--junit-xml",
                str(path),
                "--check",
                "search-ring",
                "--check",
                "pipeline-*",
            ]
        )
    out = capsys.readouterr().out
    assert code == 1 and "root cause" in out  # the table is still printed
    tree = ET.parse(path)
    root = tree.getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "search-ring",
        "pipeline-2",
        "pipeline-100",
        "pipeline-after-bad-content",
    ]
    for element in (root, suite):
        assert element.get("tests") == "4" and element.get("failures") == "3"
        assert element.get("errors") == "0" and element.get("skipped") == "0"
        assert float(element.get("time", "x")) >= 0
    assert suite.get("timestamp") and suite.get("hostname")
    properties = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert properties["profile"] == "strict" and properties["root_causes"] == "pipeline-2"
    by_name = {c.get("name"): c for c in cases}
    assert by_name["search-ring"].get("classname") == "lpjson.answers"
    assert list(by_name["search-ring"]) == []  # a pass has no children
    assert by_name["pipeline-2"].get("classname") == "lpjson.pipelining"
    (failure,) = by_name["pipeline-2"].findall("failure")
    message = failure.get("message", "")
    assert "1 of 2 answers" in message
    assert "hint: after a message, keep the bytes" in message
    assert "breaks F3 (docs/PROTOCOL.md#f3)" in message
    assert failure.get("type") == "spec"
    assert f"rerun: harness probe {host} {port} --check pipeline-2 --seed 0" in (failure.text or "")
    (consequence,) = by_name["pipeline-100"].findall("failure")
    assert "fails because pipeline-2 fails" in consequence.get("message", "")
    assert "root cause: pipeline-2" in (consequence.text or "")


def test_junit_xml_escapes_what_xml_cannot_carry_and_marks_skips() -> None:
    results = [
        CheckResult("a", "fail", "got b'\x00\x1b' and \ud800", 0.1, "unsafe", rule="F2", group="splitting"),
        CheckResult("b", "skip", "the target no longer accepts connections", 0.0, rule="S1", group="x"),
    ]
    probe = ProbeResult(Target("127.0.0.1", 1), 0, 1.0, results, 0.1)
    text = ET.tostring(to_junit_xml(probe).getroot(), encoding="unicode")
    root = ET.fromstring(text)  # parses: no raw control characters
    failure = root.find(".//testcase[@name='a']/failure")
    assert failure is not None and "\\x00" in failure.get("message", "")
    skipped = root.find(".//testcase[@name='b']/skipped")
    assert skipped is not None and "no longer accepts" in skipped.get("message", "")


@pytest.mark.parametrize(
    "argv",
    [
        ["probe", "--bogus"],
        ["probe", "127.0.0.1", "notaport"],
        ["probe", "--timeout", "x"],
        ["probe", "--profile", "lax"],
        ["probe", "--app", "chat"],
        ["probe", "--check", "nothing-*"],
        ["probe", "--skip", "*"],
        ["probe", "127.0.0.1", "70000"],
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(argv: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness probe: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_exit_status_is_0_when_every_check_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["probe", "--quiet", "--check", "split-*"]) == 0


# -- speed ------------------------------------------------------------------------------------


def test_the_whole_probe_of_a_correct_server_takes_under_3_seconds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.monotonic()
    assert main(["probe", "--quiet", "--json"]) == 0
    elapsed = time.monotonic() - started
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] == len(CHECKS)
    assert elapsed < 3.0, elapsed


def test_a_server_that_never_answers_is_judged_within_30_seconds() -> None:
    started = time.monotonic()
    with SilentServer() as (host, port):
        probe = run_checks(CHECKS, Target(host, port))
    elapsed = time.monotonic() - started
    assert elapsed < 30.0, elapsed
    assert [r.name for r in probe.root_causes] == ["search-morpheus"]
    assert all(r.status == "fail" and r.severity == "unsafe" for r in probe.results)
