"""The probe's check set as a whole: every rule judged, hints, dependencies, profiles,
selection, and the root-cause model of the runner."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import ReferenceServer
from harness.apps import APPS, echo_app, search_app
from harness.probe import CHECKS
from harness.probe.catalog import checks_for, select_checks
from harness.probe.checks import UNCHECKED_RULES, Check, CheckContext, CheckFailed, lpjson_checks
from harness.probe.profiles import GUIDE, PROFILES, RELAXATIONS, STRICT, get_profile
from harness.probe.runner import Target, order_checks, run_checks
from harness.spec import RULES

sys.path.insert(0, str(Path(__file__).parent))
from bad_servers import SplitHeaderServer

#: The application rules, each judged only when the probe expects that application's answers.
_APP_RULES = {"search": {"A1", "A2", "A3"}, "echo": {"A4"}}


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    with ReferenceServer() as server:
        host, port = server.address
        yield Target(host, port, embedded=True)


#: The rules of byte-echo servers (--protocol echo), judged by their own check set.
_ECHO_RULES = {rule.id for rule in RULES.values() if rule.section == "Byte echo"}


@pytest.mark.parametrize("app", sorted(APPS))
def test_every_rule_a_live_server_can_be_judged_on_has_a_check(app: str) -> None:
    checks = checks_for("lpjson", app)
    unchecked = set(RULES) - _ECHO_RULES - {check.rule for check in checks}
    other_apps = set().union(*(rules for name, rules in _APP_RULES.items() if name != app))
    assert unchecked == set(UNCHECKED_RULES) | other_apps
    # the exceptions are justified, one line each
    assert set(UNCHECKED_RULES) == {"E1", "E2", "L2"}
    assert all(len(why) > 40 for why in UNCHECKED_RULES.values())


def test_every_rule_of_a_byte_echo_server_has_an_echo_check() -> None:
    assert _ECHO_RULES
    assert {check.rule for check in checks_for("echo")} == _ECHO_RULES


def test_checks_have_hints_known_dependencies_in_order_and_unique_names() -> None:
    for app in APPS:
        checks = lpjson_checks(app)
        names = [check.name for check in checks]
        assert len(names) == len(set(names))
        seen: set[str] = set()
        for check in checks:
            assert check.hint and "\n" not in check.hint, check.name
            for dep in check.depends:
                assert dep in seen, f"{check.name} depends on {dep}, which does not run before it"
            seen.add(check.name)
        assert order_checks(checks) == checks


def test_the_checks_a_bad_client_could_grow_memory_with_are_flagged() -> None:
    flagged = {check.name for check in CHECKS if check.measures_memory}
    assert {
        "never-reads",
        "never-reads-small-window",
        "many-large-requests",
        "huge-length",
        "slow-sender",
        "violation-content-too-large",
    } == flagged


def test_new_checks_cover_encodings_codecs_header_values_and_binary() -> None:
    names = {check.name for check in CHECKS}
    for encoding in ("utf-8", "utf-16", "utf-32", "ascii", "latin-1"):
        assert f"encoding-{encoding}" in names
    for codec in ("utf-7", "cp500", "utf8-alias", "base64"):
        assert f"codec-{codec}" in names
    assert "violation-unsupported-encoding" in names  # rot13
    header_checks = [check for check in CHECKS if check.group == "header-values"]
    keys = {key for key in ("byteorder", "content-type", "content-encoding", "content-length")}
    for key in keys:
        assert [c for c in header_checks if c.name.startswith(f"header-{key}-")], key
    for suffix in ("negative", "float", "bool", "string", "null"):
        assert f"header-content-length-{suffix}" in names
    assert {"binary-not-utf8", "pipeline-after-bad-content", "no-resync", "error-message-shape"} <= names


def test_profiles_relax_only_what_a_peer_does_not_depend_on() -> None:
    assert STRICT.relaxations == [] and get_profile("strict") is STRICT
    assert set(GUIDE.relaxations) == set(RELAXATIONS)
    with pytest.raises(ValueError, match="no profile 'lax'"):
        get_profile("lax")
    relaxed = {check.name for check in CHECKS if check.relaxations(GUIDE)}
    assert {"pipeline-2", "pipeline-100", "violation-non-finite-number", "codec-utf-7"} <= relaxed
    # what makes a server unsafe is judged the same under every profile
    for name in ("huge-length", "never-reads", "slow-sender", "split-one-byte", "concurrent-connections"):
        check = next(c for c in CHECKS if c.name == name)
        assert all(not check.relaxations(profile) for profile in PROFILES.values()), name
    with pytest.raises(ValueError, match="unknown profile flags"):
        Check("x", "", 1, lambda ctx: "", "test", "S1", relaxed_by=frozenset({"anything_goes"}))


def test_select_checks_takes_globs_and_refuses_an_include_that_matches_nothing() -> None:
    chosen = select_checks(CHECKS, ["split-*"], ["split-random"])
    assert [c.name for c in chosen] == ["split-prefix", "split-header", "split-content", "split-one-byte"]
    assert select_checks(CHECKS, [], ["*"]) == []
    assert len(select_checks(CHECKS, [], ["no-such-*"])) == len(CHECKS)
    with pytest.raises(ValueError, match=r"unknown check\(s\): splt-\*"):
        select_checks(CHECKS, ["splt-*"])
    with pytest.raises(ValueError, match="no protocol 'http'"):
        checks_for("http")
    with pytest.raises(ValueError, match="no application 'chat'"):
        checks_for("lpjson", "chat")


def test_harness_probe_imports_neither_hypothesis_nor_scapy() -> None:
    code = (
        "import sys, harness.probe, harness.probe.catalog, harness.probe.junit, harness.probe.profiles\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'hypothesis', 'scapy'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- root causes ----------------------------------------------------------------------------


def _fails(ctx: CheckContext) -> str:
    raise CheckFailed("broken on purpose")


def _passes(ctx: CheckContext) -> str:
    ctx.connect().close()
    return "fine"


def _waits(ctx: CheckContext) -> str:
    time.sleep(ctx.bound(5.0))  # a quick (consequence) run waits at most QUICK_WAIT
    raise CheckFailed("still broken")


def test_a_failure_that_follows_from_a_failed_dependency_names_its_root_cause(reference: Target) -> None:
    checks = [
        Check("dependent", "", 10, _waits, "test", "S1", hint="h", depends=("root",)),
        Check("root", "", 1, _fails, "test", "F2", hint="fix the root"),
        Check("independent", "", 1, _passes, "test", "S1", depends=("root-of-nothing",)),
        Check("grandchild", "", 1, _fails, "test", "S1", depends=("dependent",)),
        Check("passes-anyway", "", 1, _passes, "test", "S1", depends=("root",)),
    ]
    started = time.monotonic()
    probe = run_checks(checks, reference)
    assert time.monotonic() - started < 4.0  # the consequence waited 0.5 s, not 5 s
    by_name = {r.name: r for r in probe.results}
    assert [r.name for r in probe.results] == [
        "root",
        "dependent",
        "independent",
        "grandchild",
        "passes-anyway",
    ]
    assert by_name["root"].cause is None and by_name["root"].is_root_cause
    assert by_name["root"].hint == "fix the root"
    assert by_name["dependent"].cause == "root"
    assert by_name["dependent"].detail == "fails because root fails: still broken"
    assert by_name["grandchild"].cause == "root"  # through a consequence, to the root
    assert by_name["passes-anyway"].status == "pass" and by_name["passes-anyway"].cause is None
    assert [r.name for r in probe.root_causes] == ["root"]
    assert [r.name for r in probe.consequences("root")] == ["dependent", "grandchild"]


def test_a_dependency_cycle_is_refused() -> None:
    a = Check("a", "", 1, _passes, "test", "S1", depends=("b",))
    b = Check("b", "", 1, _passes, "test", "S1", depends=("a",))
    with pytest.raises(ValueError, match="dependency cycle"):
        order_checks([a, b])


def test_split_header_bug_is_one_root_cause_not_five(reference: Target) -> None:
    with SplitHeaderServer() as (host, port):
        probe = run_checks(CHECKS, Target(host, port))
    assert [r.name for r in probe.root_causes] == ["split-header"]
    followers = {r.name for r in probe.consequences("split-header")}
    always = {"split-one-byte", "split-random", "concurrent-interleaved", "slow-sender"}
    # 100 pipelined requests are sometimes read with a header cut in two: the same bug
    assert always <= followers <= always | {"pipeline-100"}


# -- applications ---------------------------------------------------------------------------


def test_an_echo_server_probed_with_app_echo_passes_every_check() -> None:
    with ReferenceServer(app=echo_app) as server:
        host, port = server.address
        probe = run_checks(checks_for("lpjson", "echo"), Target(host, port), app=echo_app)
    assert probe.ok, [(r.name, r.detail) for r in probe.results if r.status != "pass"]
    assert probe.app == "echo"


def test_an_echo_server_is_not_called_unsafe_for_echoing() -> None:
    # Probed as a search server, the echo server gives wrong answers (spec), never "unsafe".
    with ReferenceServer(app=echo_app) as server:
        host, port = server.address
        probe = run_checks(
            [c for c in CHECKS if c.group in ("answers", "encodings")], Target(host, port), app=search_app
        )
    failed = [r for r in probe.results if r.status == "fail"]
    assert failed and all(r.severity == "spec" for r in failed)
