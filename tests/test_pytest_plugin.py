"""The pytest plugin (harness/pytest_plugin.py), run inside pytest with ``pytester``.

Against the reference server every probe item passes (the server started with
``--lpjson-cmd``, or a live ``--lpjson-target``); against the zoo's buggy servers the
items of the checks meant for their bug fail, with the check's detail, the rule and the
hint in the report and in ``--junitxml``; a server that dies is restarted; ``-k framing``
selects the splitting and pipelining checks; the fixtures work in a user's own test;
without the options the plugin changes nothing (no items, no probe imported).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from zoo import ZOO

from harness.probe.catalog import checks_for
from harness.server import ReferenceServer

pytest_plugins = ["pytester"]

PYTHON = shlex.quote(sys.executable)
REFERENCE_CMD = f"{PYTHON} -m harness serve --port {{port}}"
LPJSON_CHECKS = [check.name for check in checks_for("lpjson")]
FRAMING_CHECKS = [check.name for check in checks_for("lpjson") if check.group in ("splitting", "pipelining")]


def zoo_cmd(name: str) -> str:
    return f"{PYTHON} {shlex.quote(str(ZOO[name].path))} {{host}} {{port}}"


def lit(line: str) -> str:
    """``line`` as an fnmatch pattern that matches it literally around its ``*`` (brackets escaped)."""
    return line.replace("[", "[[]")


def item_names(result: pytest.RunResult) -> list[str]:
    """The probe items that ``--collect-only -q`` listed."""
    prefix = "lpjson::test_lpjson["
    return [line[len(prefix) : -1] for line in result.outlines if line.startswith(prefix)]


def failed_checks(result: pytest.RunResult) -> set[str]:
    prefix = "FAILED lpjson::test_lpjson["
    return {line[len(prefix) :].split("]", 1)[0] for line in result.outlines if line.startswith(prefix)}


@pytest.fixture
def reference() -> Iterator[tuple[str, int]]:
    with ReferenceServer("127.0.0.1", 0) as server:
        yield server.address


# -- inert without its options --------------------------------------------------------


def test_plugin_is_inert_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import sys

        def test_plain():
            assert not [m for m in sys.modules if m.startswith("harness.probe")]
            assert "harness.supervise" not in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*collected 1 item", "*test_plain PASSED*"])
    # Installed (the entry point is registered), yet silent: no header line, no items.
    assert "lpjson-harness" in result.stdout.str()
    assert "lpjson:" not in result.stdout.str()
    assert "test_lpjson" not in result.stdout.str()


def test_importing_the_plugin_imports_no_heavy_module() -> None:
    code = (
        "import sys, harness.pytest_plugin\n"
        "heavy = ('asyncio', 'hypothesis', 'scapy', 'harness.probe', 'harness.supervise', 'harness.client')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"


def test_fixtures_skip_with_a_reason_without_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_server(lpjson_server):
            pass

        def test_client(lpjson_client):
            pass
        """
    )
    result = pytester.runpytest("-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["*lpjson_server needs the lpjson plugin's target: run pytest with --lpjson-target*"]
    )


# -- usage errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lpjson-target", "localhost"], "--lpjson-target 'localhost': expected HOST:PORT*"),
        (
            ["--lpjson-target", "localhost:http"],
            "--lpjson-target 'localhost:http': the port 'http' is not a number*",
        ),
        (
            ["--lpjson-target", "127.0.0.1:0"],
            "--lpjson-target '127.0.0.1:0': the port must be 1-65535, not 0",
        ),
        (["--lpjson-target", "127.0.0.1:70000"], "*the port must be 1-65535, not 70000"),
        (["--lpjson-target", "::1:80"], "*put an IPv6 address in brackets: [[]::1]:80"),
        (
            ["--lpjson-target", "a:1", "--lpjson-cmd", "x {port}"],
            "give --lpjson-target or --lpjson-cmd, not both",
        ),
        (["--lpjson-cmd", "python server.py"], "--lpjson-cmd 'python server.py' has no {port}*"),
        (["--lpjson-cmd", "python 'server.py {port}"], "--lpjson-cmd *: No closing quotation"),
        (
            ["--lpjson-profile", "guide"],
            "--lpjson-profile needs --lpjson-target HOST:PORT or --lpjson-cmd CMD",
        ),
        (["--lpjson-target", "a:1", "--lpjson-profile", "lax"], "--lpjson-profile: no profile 'lax'*"),
        (["--lpjson-target", "a:1", "--lpjson-app", "chat"], "--lpjson-app: *chat*"),
        (["--lpjson-target", "a:1", "--lpjson-protocol", "http"], "--lpjson-protocol: no protocol 'http'*"),
        (
            ["--lpjson-target", "a:1", "--lpjson-timeout", "0"],
            "--lpjson-timeout must be a number > 0, not '0'",
        ),
        (["--lpjson-target", "a:1", "--lpjson-timeout", "nan"], "--lpjson-timeout must be a number > 0*"),
        (
            ["--lpjson-target", "a:1", "--lpjson-idle-timeout", "soon"],
            "--lpjson-idle-timeout must be a duration > 0 and at most 3600 seconds (10, 10s, 2m), not 'soon'",
        ),
        (
            ["--lpjson-target", "a:1", "--lpjson-protocol", "echo", "--lpjson-idle-timeout", "5"],
            "--lpjson-idle-timeout is for the lpjson protocol only",
        ),
    ],
)
def test_bad_option_is_one_usage_error(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {message}"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert len([line for line in result.errlines if line.strip()]) == 1


# -- collection and selection ---------------------------------------------------------


def test_every_check_is_an_item_and_k_framing_selects_splitting_and_pipelining(
    pytester: pytest.Pytester,
) -> None:
    # Collecting starts nothing: this command would fail at once.
    never = f"{PYTHON} -c 'raise SystemExit(3)' {{port}}"
    everything = pytester.runpytest("--collect-only", "-q", "--lpjson-cmd", never)
    assert everything.ret == pytest.ExitCode.OK
    assert item_names(everything) == LPJSON_CHECKS
    framing = pytester.runpytest("--collect-only", "-q", "--lpjson-cmd", never, "-k", "framing")
    assert item_names(framing) == FRAMING_CHECKS
    assert {"split-prefix", "split-one-byte", "pipeline-2", "pipeline-100"} <= set(FRAMING_CHECKS)
    # The rule and the group are keywords too; the marker carries them.
    by_rule = pytester.runpytest("--collect-only", "-q", "--lpjson-cmd", never, "-k", "F2")
    assert item_names(by_rule) == [c.name for c in checks_for("lpjson") if c.rule == "F2"]
    by_group = pytester.runpytest("--collect-only", "-q", "--lpjson-cmd", never, "-k", "violations")
    assert item_names(by_group) == [c.name for c in checks_for("lpjson") if c.group == "violations"]
    marked = pytester.runpytest("--collect-only", "-q", "--lpjson-cmd", never, "-m", "lpjson")
    assert item_names(marked) == LPJSON_CHECKS


# -- the reference server passes ------------------------------------------------------


def test_reference_server_started_by_the_plugin_passes_every_item(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--lpjson-cmd", REFERENCE_CMD, "-p", "no:cacheprovider")
    result.assert_outcomes(passed=len(LPJSON_CHECKS))
    result.stdout.fnmatch_lines(
        ["lpjson: command * -m harness serve --port {port}, protocol lpjson, profile strict*"]
    )


def test_live_reference_target_passes_every_item(
    pytester: pytest.Pytester, reference: tuple[str, int]
) -> None:
    host, port = reference
    result = pytester.runpytest("--lpjson-target", f"{host}:{port}")
    result.assert_outcomes(passed=len(LPJSON_CHECKS))


# -- buggy servers fail the right items -----------------------------------------------


def test_split_bug_fails_the_framing_items_with_detail_hint_and_junit(pytester: pytest.Pytester) -> None:
    junit = pytester.path / "report.xml"
    result = pytester.runpytest(
        "--lpjson-cmd", zoo_cmd("one_recv_selectors"), "-k", "framing", f"--junitxml={junit}"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    roots = {"split-prefix", "split-header", "split-content"}
    failed = failed_checks(result)
    assert roots | {"split-one-byte"} <= failed
    assert "pipeline-2" not in failed  # whole requests pipelined are read right
    out = result.stdout.str()
    assert "Traceback" not in out
    result.stdout.fnmatch_lines(
        [
            lit("*_ test_lpjson[split-prefix] _*"),
            "split-prefix: FAIL (unsafe) in *",
            "0 of 1 answers, then silence for *s (server hangs)",
            "breaks F2 (docs/PROTOCOL.md#f2): a message may arrive split at any byte*",
            "hint: read until 2 bytes are buffered before taking the header length: one recv() is not one*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            lit("split-one-byte: FAIL (*) in *, because split-prefix fails (see test_lpjson[split-prefix])"),
            "fails because split-prefix fails: *",
            "breaks F2 *",
            "fix split-prefix first: read until 2 bytes are buffered*",
        ]
    )
    result.stdout.fnmatch_lines(
        [lit("FAILED lpjson::test_lpjson[split-prefix] - FAIL (unsafe): 0 of 1 answers*")]
    )

    cases = {case.get("name"): case for case in ET.parse(junit).iter("testcase")}
    assert set(cases) == {f"test_lpjson[{name}]" for name in FRAMING_CHECKS}
    assert {case.get("classname") for case in cases.values()} == {"lpjson"}
    failing = {
        name[len("test_lpjson[") : -1] for name, case in cases.items() if case.find("failure") is not None
    }
    assert failing == failed
    prefix_failure = cases["test_lpjson[split-prefix]"].find("failure")
    assert prefix_failure is not None
    assert prefix_failure.get("message", "").startswith("FAIL (unsafe): 0 of 1 answers")
    assert "hint: read until 2 bytes are buffered" in (prefix_failure.text or "")
    assert cases["test_lpjson[pipeline-2]"].find("failure") is None


def test_xdist_workers_give_the_same_verdicts_and_junit(pytester: pytest.Pytester) -> None:
    """``pytest -n 2``: each pytest-xdist worker starts and watches its own server; the items
    fail and pass as in one process, and the JUnit report holds each item once."""
    junit = pytester.path / "report.xml"
    args = ["--lpjson-cmd", zoo_cmd("one_recv_selectors"), "-k", "framing", "-p", "no:cacheprovider"]
    alone = pytester.runpytest_subprocess(*args)
    spread = pytester.runpytest_subprocess("-n", "2", *args, f"--junitxml={junit}")
    assert spread.ret == alone.ret == pytest.ExitCode.TESTS_FAILED
    assert {"split-prefix", "split-header", "split-content"} <= failed_checks(spread) == failed_checks(alone)
    assert spread.parseoutcomes()["passed"] == alone.parseoutcomes()["passed"]
    cases = [case.get("name") for case in ET.parse(junit).iter("testcase")]
    assert sorted(cases) == sorted(f"test_lpjson[{name}]" for name in FRAMING_CHECKS)


def test_live_target_with_a_split_bug_fails_its_items(pytester: pytest.Pytester) -> None:
    server = subprocess.Popen(
        [sys.executable, str(ZOO["split_header_protocol"].path), "127.0.0.1", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline().rsplit(":", 1)[1])
        result = pytester.runpytest("--lpjson-target", f"127.0.0.1:{port}", "-k", "split or search-morpheus")
    finally:
        server.terminate()
        server.wait(10)
    failed = failed_checks(result)
    assert {"split-header", "split-one-byte"} <= failed <= {"split-header", "split-one-byte", "split-random"}
    result.stdout.fnmatch_lines(["rerun: harness probe 127.0.0.1 * --check split-header --seed 0"])


def test_idle_timeout_item_fails_a_server_without_one_and_passes_one_with(pytester: pytest.Pytester) -> None:
    # The zoo's servers time a quiet peer out after 3 s (tests/zoo/zoolib.py).
    chosen = "idle-timeout or split-content"
    result = pytester.runpytest(
        "--lpjson-cmd", zoo_cmd("no_idle_timeout_streams"), "--lpjson-idle-timeout", "4", "-k", chosen
    )
    assert failed_checks(result) == {"idle-timeout"}
    result.stdout.fnmatch_lines(["*still connected after * (an idle timeout of at most 4 s was asked for)*"])
    passing = pytester.runpytest(
        "--lpjson-cmd", zoo_cmd("correct_asyncio_streams"), "--lpjson-idle-timeout", "4", "-k", chosen
    )
    passing.assert_outcomes(passed=2)
    without = pytester.runpytest("--lpjson-cmd", zoo_cmd("no_idle_timeout_streams"), "-k", chosen)
    without.assert_outcomes(passed=1)  # L2 is not judged without the option


def test_server_that_dies_fails_that_item_and_is_restarted(pytester: pytest.Pytester) -> None:
    chosen = "search-morpheus or violation-header-not-utf8 or violation-header-not-json or search-ring"
    result = pytester.runpytest("--lpjson-cmd", zoo_cmd("exit_on_bad_header_selectors"), "-k", chosen)
    assert failed_checks(result) == {"violation-header-not-utf8", "violation-header-not-json"}
    result.assert_outcomes(passed=2, failed=2)  # search-ring runs on the restarted server
    result.stdout.fnmatch_lines(
        [
            "violation-header-not-utf8: FAIL (unsafe) in *",
            "the server exited with status 1 while handling violation-header-not-utf8's *",
            "*Captured lpjson server output call*",
            "stderr: Error: bad request from *header-not-utf8*",
        ]
    )


def test_server_traceback_fails_the_item_unless_allowed(pytester: pytest.Pytester) -> None:
    cmd = zoo_cmd("traceback_survives_threads")
    result = pytester.runpytest(
        "--lpjson-cmd", cmd, "-k", "search-morpheus or violation-content-not-decodable"
    )
    assert "violation-content-not-decodable" in failed_checks(result)
    result.stdout.fnmatch_lines(["*the server raised *Error*"])
    allowed = pytester.runpytest(
        "--lpjson-cmd",
        cmd,
        "--lpjson-allow-tracebacks",
        "-k",
        "search-morpheus or violation-content-not-decodable",
    )
    assert "the server raised" not in allowed.stdout.str()
    assert "search-morpheus" not in failed_checks(allowed)


def test_server_that_never_starts_is_one_error_and_stops_the_session(pytester: pytest.Pytester) -> None:
    cmd = f"{PYTHON} -c 'import sys; sys.exit(\"no config file\")' {{port}}"
    result = pytester.runpytest("--lpjson-cmd", cmd)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "the server under test did not start: * exited with status 1 before accepting connections*",
            "*| no config file",
            "*Interrupted: the lpjson server under test is unavailable*",
        ]
    )


# -- fixtures in a user's own tests ---------------------------------------------------

USER_TESTS = """
    from harness import Client, Message

    def test_address(lpjson_server):
        host, port = lpjson_server
        assert host == "127.0.0.1" and 0 < port < 65536

    def test_request(lpjson_client):
        assert isinstance(lpjson_client, Client) and lpjson_client.connected
        answer = lpjson_client.request(Message.from_json({"action": "search", "value": "ring"}))
        assert "Misty Mountains" in answer.json()["result"]
    """


def test_fixtures_with_a_live_target(pytester: pytest.Pytester, reference: tuple[str, int]) -> None:
    pytester.makepyfile(USER_TESTS)
    host, port = reference
    result = pytester.runpytest("--lpjson-target", f"{host}:{port}", "-k", "test_address or test_request")
    result.assert_outcomes(passed=2)


def test_fixtures_with_a_started_server(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(USER_TESTS)
    # In a subprocess, as a user runs it (the in-process run re-imports harness.client).
    result = pytester.runpytest_subprocess(
        "--lpjson-cmd", REFERENCE_CMD, "-k", "test_address or test_request"
    )
    result.assert_outcomes(passed=2)


# -- the guide's echo servers ---------------------------------------------------------


@pytest.mark.parametrize(("server", "failing"), [("threads", set()), ("first-recv-only", {"echo-one-byte"})])
def test_echo_protocol_framing_items(pytester: pytest.Pytester, server: str, failing: set[str]) -> None:
    script = shlex.quote(str(Path(__file__).with_name("echo_servers.py")))
    cmd = f"{PYTHON} {script} {server} {{host}} {{port}}"
    result = pytester.runpytest("--lpjson-protocol", "echo", "--lpjson-cmd", cmd, "-k", "framing")
    framing = [c.name for c in checks_for("echo") if c.group in ("splitting", "pipelining")]
    assert framing == ["echo-one-byte", "echo-random-splits"]
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("failed", 0) == len(framing)
    assert failing <= failed_checks(result)
    if not failing:
        assert not failed_checks(result)
