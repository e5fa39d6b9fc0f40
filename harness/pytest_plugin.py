"""pytest plugin: the probe's checks as test items, and fixtures for a user's own tests.

Registered as the ``lpjson`` ``pytest11`` entry point, so installing harness makes it
available to every pytest run; it does nothing unless ``--lpjson-target HOST:PORT``
(a live server) or ``--lpjson-cmd "python my_server.py {host} {port}"`` (a server
started for the session with :class:`harness.supervise.ServerUnderTest`, restarted if
it dies, stopped at the end) is given. Then every check of the probe
(:func:`harness.probe.catalog.checks_for`) becomes an item ``lpjson::test_lpjson[NAME]``
whose keywords are the check's name, group and rule (plus ``framing`` for the splitting
and pipelining checks, so ``-k framing`` selects those). A failing item's report is
the check's verdict, not a traceback: the detail, the rule it breaks, the hint, and,
for a failure another explains, that root cause. ``--junitxml`` works as for any test.

Items run in the probe's order (dependencies first) with :func:`~harness.probe.runner.run_check`,
one at a time. A check whose dependency failed runs with short waits and says which
root cause explains it; against a live target (nothing to watch) the checks known to
be such consequences run together, as ``harness probe`` runs them, so a server that
hangs on everything costs seconds. Under ``--lpjson-cmd`` each check is watched by the
probe's own process monitor (:class:`harness.probe.supervised.ServerObserver`, as
``harness probe -- CMD``): the server's output during it is attached to the report, a
death or a printed traceback fails it (a traceback unless ``--lpjson-allow-tracebacks``
or the guide profile), its memory is sampled during the checks where a client could grow it.

Fixtures: ``lpjson_server`` (the server's ``(host, port)``) and ``lpjson_client`` (a
connected :class:`harness.Client`, closed after the test); both skip, with the reason,
when the plugin's options are not given.

Importing this module is cheap: the probe, the supervisor and the client are imported
only when the options are given or a fixture is used (see tests/test_pytest_plugin.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import shlex
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from _pytest._code.code import TerminalRepr
from _pytest._io import TerminalWriter

if TYPE_CHECKING:
    from harness.apps import App
    from harness.client import Client
    from harness.probe.checks import Check
    from harness.probe.profiles import Profile
    from harness.probe.runner import CheckResult, Target
    from harness.probe.supervised import ServerObserver
    from harness.supervise import ServerUnderTest

__all__ = ["LpjsonItem", "lpjson_client", "lpjson_server"]

log = logging.getLogger(__name__)

#: The groups whose checks ``-k framing`` selects: requests split anywhere, and pipelined.
FRAMING_GROUPS = frozenset({"splitting", "pipelining"})
#: Threads that run the checks known to fail as consequences, against a live target.
_WORKERS = 8
#: Seconds a server may take to start (times --lpjson-timeout).
_START_TIMEOUT = 10.0
_NOT_ACTIVE = (
    "needs the lpjson plugin's target: run pytest with --lpjson-target HOST:PORT "
    'or --lpjson-cmd "python my_server.py {host} {port}"'
)


# -- options ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lpjson", "lpjson probe (harness): a server's protocol checks as test items")
    group.addoption(
        "--lpjson-target",
        metavar="HOST:PORT",
        help="check the lpjson server listening at HOST:PORT: each probe check becomes a test item",
    )
    group.addoption(
        "--lpjson-cmd",
        metavar="CMD",
        help="start the server to check with CMD for the session ({host} and {port} are replaced "
        "by a free loopback address), restart it if it dies, stop it at the end",
    )
    group.addoption(
        "--lpjson-profile",
        metavar="NAME",
        help="strict (default: docs/PROTOCOL.md) or guide (the guide's app-server.py: one request per "
        "connection, lax JSON, any codec)",
    )
    group.addoption(
        "--lpjson-app", metavar="NAME", help="the application whose answers are expected: search or echo"
    )
    group.addoption(
        "--lpjson-protocol", metavar="NAME", help="lpjson (default) or echo (a raw byte-echo server)"
    )
    group.addoption(
        "--lpjson-timeout", metavar="SCALE", help="multiply every check's time bound by SCALE (default 1)"
    )
    group.addoption("--lpjson-seed", metavar="N", help="seed of the random splittings (default 0)")
    group.addoption(
        "--lpjson-idle-timeout",
        metavar="SECONDS",
        help="the longest idle timeout the server may have: adds the idle-timeout item (L2); "
        "without it L2 is not judged",
    )
    group.addoption(
        "--lpjson-allow-tracebacks",
        action="store_true",
        default=False,
        help="with --lpjson-cmd: a traceback the server prints does not fail the check",
    )


#: The options that only mean something with --lpjson-target or --lpjson-cmd.
_DEPENDENT_OPTIONS = (
    "lpjson_profile",
    "lpjson_app",
    "lpjson_protocol",
    "lpjson_timeout",
    "lpjson_seed",
    "lpjson_idle_timeout",
    "lpjson_allow_tracebacks",
)


@dataclasses.dataclass(frozen=True)
class Settings:
    """The plugin's options, validated."""

    target: tuple[str, int] | None
    command: tuple[str, ...] | None
    profile: Profile
    app: App
    protocol: str
    scale: float
    seed: int
    allow_tracebacks: bool
    idle_timeout: float | None = None

    def describe(self) -> str:
        where = (
            f"target {_format_address(self.target)}"
            if self.target is not None
            else f"command {' '.join(self.command or ())}"
        )
        return (
            f"lpjson: {where}, protocol {self.protocol}, profile {self.profile.name}, app {self.app.name}, "
            f"timeout x{self.scale:g}, seed {self.seed}"
        )


def _format_address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_target(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) as ``(host, port)``; ``pytest.UsageError`` otherwise."""
    example = "expected HOST:PORT, e.g. 127.0.0.1:65432"
    host, sep, port_text = text.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise pytest.UsageError(
            f"--lpjson-target {text!r}: put an IPv6 address in brackets: [{host}]:{port_text}"
        )
    if not sep or not host:
        raise pytest.UsageError(f"--lpjson-target {text!r}: {example}")
    try:
        port = int(port_text)
    except ValueError:
        raise pytest.UsageError(
            f"--lpjson-target {text!r}: the port {port_text!r} is not a number ({example})"
        ) from None
    if not 0 < port < 65536:
        raise pytest.UsageError(f"--lpjson-target {text!r}: the port must be 1-65535, not {port}")
    return host, port


def parse_command(text: str) -> tuple[str, ...]:
    """The ``--lpjson-cmd`` words (shell-like quoting), which must place ``{port}``."""
    try:
        words = tuple(shlex.split(text))
    except ValueError as exc:
        raise pytest.UsageError(f"--lpjson-cmd {text!r}: {exc}") from None
    if not words:
        raise pytest.UsageError("--lpjson-cmd is empty: give the command that starts the server")
    if not any("{port}" in word for word in words):
        raise pytest.UsageError(
            f"--lpjson-cmd {text!r} has no {{port}}: the plugin picks a free port and passes it there "
            "(for a server already listening, use --lpjson-target HOST:PORT)"
        )
    return words


def settings_from(config: pytest.Config) -> Settings | None:
    """The validated options, or None when the plugin is not asked for (``pytest.UsageError``
    for a bad value, or for an option given without a target)."""
    target_text: str | None = config.getoption("lpjson_target")
    command_text: str | None = config.getoption("lpjson_cmd")
    if target_text is None and command_text is None:
        given = [name for name in _DEPENDENT_OPTIONS if config.getoption(name)]
        if given:
            option = "--" + given[0].replace("_", "-")
            raise pytest.UsageError(f"{option} needs --lpjson-target HOST:PORT or --lpjson-cmd CMD")
        return None
    if target_text is not None and command_text is not None:
        raise pytest.UsageError("give --lpjson-target or --lpjson-cmd, not both")
    target = parse_target(target_text) if target_text is not None else None
    command = parse_command(command_text) if command_text is not None else None

    from harness.apps import get_app
    from harness.commands._parsing import seconds
    from harness.probe.catalog import MAX_IDLE_TIMEOUT, PROTOCOLS
    from harness.probe.profiles import get_profile

    scale_text = config.getoption("lpjson_timeout") or "1"
    try:
        scale = float(scale_text)
    except ValueError:
        scale = math.nan
    if not 0 < scale < math.inf:
        raise pytest.UsageError(f"--lpjson-timeout must be a number > 0, not {scale_text!r}")
    seed_text = config.getoption("lpjson_seed") or "0"
    try:
        seed = int(seed_text)
    except ValueError:
        raise pytest.UsageError(f"--lpjson-seed must be an integer, not {seed_text!r}") from None
    idle_text: str | None = config.getoption("lpjson_idle_timeout")
    idle_timeout: float | None = None
    if idle_text is not None:
        try:
            idle_timeout = seconds(zero=False)(idle_text)  # as harness probe --idle-timeout: 10, 10s, 2m
        except argparse.ArgumentTypeError:
            idle_timeout = math.nan
        if not 0 < idle_timeout <= MAX_IDLE_TIMEOUT:
            raise pytest.UsageError(
                f"--lpjson-idle-timeout must be a duration > 0 and at most {MAX_IDLE_TIMEOUT:g} seconds "
                f"(10, 10s, 2m), not {idle_text!r}"
            )
    protocol = config.getoption("lpjson_protocol") or "lpjson"
    if idle_timeout is not None and protocol != "lpjson":
        raise pytest.UsageError("--lpjson-idle-timeout is for the lpjson protocol only")
    if protocol not in PROTOCOLS:
        raise pytest.UsageError(
            f"--lpjson-protocol: no protocol {protocol!r} (choose from {', '.join(PROTOCOLS)})"
        )
    try:
        profile = get_profile(config.getoption("lpjson_profile") or "strict")
    except ValueError as exc:
        raise pytest.UsageError(f"--lpjson-profile: {exc}") from None
    try:
        app = get_app(config.getoption("lpjson_app") or "search")
    except ValueError as exc:
        raise pytest.UsageError(f"--lpjson-app: {exc}") from None
    return Settings(
        target=target,
        command=command,
        profile=profile,
        app=app,
        protocol=protocol,
        scale=scale,
        seed=seed,
        allow_tracebacks=bool(config.getoption("lpjson_allow_tracebacks")),
        idle_timeout=idle_timeout,
    )


# -- the session ----------------------------------------------------------------------


class ServerUnavailable(Exception):
    """The server under test never started, or the target cannot be reached."""


class _Probe:
    """The state of one pytest session's probe: the server, the results so far."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.results: dict[str, CheckResult] = {}
        #: The checks of the collected items, in run order (set when collection finishes).
        self.planned: list[Check] = []
        self.server: ServerUnderTest | None = None
        #: The probe's process monitor around each check, made for ``server``.
        self.observer: ServerObserver | None = None
        self.unavailable: str | None = None
        #: What happened to the server since the last check (restarts), for that check's report.
        self.events: list[str] = []

    @property
    def watched(self) -> bool:
        return self.settings.command is not None

    def checks(self) -> list[Check]:
        from harness.probe.catalog import checks_for
        from harness.probe.runner import order_checks

        return order_checks(
            checks_for(self.settings.protocol, self.settings.app, idle_timeout=self.settings.idle_timeout)
        )

    # -- the server --

    def address(self) -> tuple[str, int]:
        """The server's address, starting (or restarting) it first under ``--lpjson-cmd``;
        :class:`ServerUnavailable` when it cannot be had."""
        if self.unavailable is not None:
            raise ServerUnavailable(self.unavailable)
        if self.settings.target is not None:
            if not self.results:  # the first use: is anyone there?
                from harness.probe.runner import Target, reachable

                why = reachable(Target(*self.settings.target), max(1.0, 2.0 * self.settings.scale))
                if why is not None:
                    self.unavailable = f"cannot connect to {_format_address(self.settings.target)}: {why}"
                    raise ServerUnavailable(self.unavailable)
            return self.settings.target
        return self._running_server().address

    def _running_server(self, *, restart: bool = False) -> ServerUnderTest:
        """The supervised server, started, or restarted when it is not running (or ``restart``)."""
        from harness.supervise import ServerStartError, ServerUnderTest, describe_status

        assert self.settings.command is not None
        try:
            if self.server is None:
                self.server = ServerUnderTest(
                    self.settings.command,
                    start_timeout=_START_TIMEOUT * self.settings.scale,
                    allow_tracebacks=self.settings.allow_tracebacks,
                )
                self.server.start()
            elif restart or not self.server.alive:
                status = self.server.returncode
                if not restart:  # a death a check saw is in that check's report already
                    how = describe_status(status) if status is not None else "stopped"
                    self.events.append(f"the server {how} between checks: restarted it")
                self.server.restart()
        except ServerStartError as exc:
            self.unavailable = f"the server under test did not start: {exc}"
            raise ServerUnavailable(self.unavailable) from None
        return self.server

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    # -- checks --

    def _cause(self, check: Check) -> str | None:
        for dep in check.depends:
            found = self.results.get(dep)
            if found is not None and found.status == "fail":
                return found.cause or dep
        return None

    def result_for(self, check: Check) -> CheckResult:
        """The verdict of ``check``: run now, or already run with the consequences before it."""
        if check.name not in self.results:
            cause = self._cause(check)
            if cause is not None and not self.watched:
                self._run_consequences(check)
            else:
                self.results[check.name] = self._run(check, cause)
        return self.results[check.name]

    def _target(self) -> Target:
        from harness.probe.runner import Target

        return Target(*self.address())

    def _refused(self, target: Target) -> str | None:
        from harness.probe.runner import reachable

        return reachable(target, max(0.5, 2.0 * self.settings.scale))

    def _skip_down(self, check: Check, why: str) -> CheckResult:
        from harness.probe.runner import CheckResult

        done = [r for r in self.results.values() if r.status != "skip"]
        last = next((r.name for r in reversed(done) if r.status == "fail"), done[-1].name if done else None)
        since = f" since {last!r}" if last else ""
        return CheckResult(
            check.name,
            "skip",
            f"the target no longer accepts connections ({why}){since}",
            0.0,
            rule=check.rule,
            group=check.group,
            hint=check.hint,
        )

    def _check(self, check: Check, target: Target, *, quick: bool) -> CheckResult:
        """:func:`~harness.probe.runner.run_check` with the session's seed, scale, profile and app."""
        from harness.probe.runner import run_check

        return run_check(
            check,
            target,
            self.settings.seed,
            self.settings.scale,
            profile=self.settings.profile,
            app=self.settings.app,
            quick=quick,
        )

    def _run(self, check: Check, cause: str | None) -> CheckResult:

        target = self._target()
        if not self.watched:
            refused = self._refused(target)
            if refused is not None:
                return self._skip_down(check, refused)
            result = self._check(check, target, quick=cause is not None)
        else:
            result = self._watch(check, target, cause is not None)
        return _as_consequence(result, cause)

    def _watch(self, check: Check, target: Target, quick: bool) -> CheckResult:
        """Run ``check`` against the supervised server under the probe's own process monitor
        (:class:`harness.probe.supervised.ServerObserver`: output, tracebacks, deaths, RSS)."""
        from harness.probe.supervised import OUTPUT_ATTACHMENT, ServerObserver

        server = self._running_server()
        if self._refused(target) is not None:  # alive but no longer serving: a fresh one
            self.events.append("the server stopped accepting connections: restarted it")
            server = self._running_server(restart=True)
        if self.observer is None or self.observer.server is not server:
            self.observer = ServerObserver(server, allow_tracebacks=self.settings.profile.prints_tracebacks)
        events, self.events = self.events, []
        self.observer.before(check)
        result = self._check(check, target, quick=quick)
        self.observer.after(check, result)  # a death is judged here, and the server restarted
        if events:
            shown = result.attachments.get(OUTPUT_ATTACHMENT)
            result.attachments[OUTPUT_ATTACHMENT] = "\n".join([*events, *([shown] if shown else [])])
        return result

    def _run_consequences(self, first: Check) -> None:
        """Run, together, ``first`` and every planned check not yet run whose dependency has
        failed: their verdicts are explained already, so they run with short waits."""

        names = {check.name for check in self.planned}
        batch = [first] + [
            check
            for check in self.planned
            if check.name != first.name and check.name not in self.results and self._cause(check) is not None
        ]
        if first.name not in names:
            batch = [first]
        causes = {check.name: self._cause(check) for check in batch}
        target = self._target()
        refused = self._refused(target)

        def run(check: Check) -> CheckResult:
            if refused is not None:
                skipped = self._skip_down(check, refused)
                skipped.detail += f"; and its dependency failed ({causes[check.name]})"
                return skipped
            result = self._check(check, target, quick=True)
            return _as_consequence(result, causes[check.name])

        with ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="lpjson-consequence") as pool:
            for check, result in zip(batch, pool.map(run, batch), strict=True):
                self.results[check.name] = result

    def rerun(self, check: Check) -> str | None:
        """The command that reruns ``check`` alone (against a live target)."""
        if self.settings.target is None:
            return None
        from harness.probe.report import rerun_command
        from harness.probe.runner import Target

        return rerun_command(
            Target(*self.settings.target),
            check.name,
            self.settings.seed,
            self.settings.scale,
            profile=self.settings.profile.name,
            app=self.settings.app.name,
            protocol=self.settings.protocol,
            idle_timeout=self.settings.idle_timeout,
        )


def _as_consequence(result: CheckResult, cause: str | None) -> CheckResult:
    if cause is not None and result.status == "fail":
        result.cause = cause
        result.detail = f"fails because {cause} fails: {result.detail}"
    return result


_PROBE = pytest.StashKey[_Probe]()


def _probe_of(config: pytest.Config) -> _Probe | None:
    return config.stash.get(_PROBE, None)


# -- hooks ----------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    settings = settings_from(config)
    if settings is None:
        return
    config.stash[_PROBE] = _Probe(settings)
    config.addinivalue_line(
        "markers", "lpjson(check, group, rule): a check of the lpjson probe (harness's pytest plugin)"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    probe = _probe_of(config)
    if probe is not None:
        probe.close()


def pytest_report_header(config: pytest.Config) -> str | None:
    probe = _probe_of(config)
    return None if probe is None else probe.settings.describe()


@pytest.hookimpl(tryfirst=True)  # before -k, -m and --deselect look at the items
def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    probe = _probe_of(config)
    if probe is None:
        return
    collector = LpjsonChecks.from_parent(session, name="lpjson", nodeid="lpjson")
    # Through the session's own collection, so that the collection hooks (the terminal's
    # count of items, a collection error's report) see these items as any others.
    items.extend(session.genitems(collector))


def pytest_collection_finish(session: pytest.Session) -> None:
    probe = _probe_of(session.config)
    if probe is not None:
        probe.planned = [item.check for item in session.items if isinstance(item, LpjsonItem)]


class LpjsonChecks(pytest.Collector):
    """The probe's checks, as items (a collector of no file: the plugin adds it to the session)."""

    def collect(self) -> list[pytest.Item]:
        probe = _probe_of(self.config)
        if probe is None:
            return []
        return [
            LpjsonItem.from_parent(self, name=f"test_lpjson[{check.name}]", check=check)
            for check in probe.checks()
        ]


class CheckFailure(Exception):
    """A check's failing verdict (reported by :meth:`LpjsonItem.repr_failure`, not as a traceback)."""

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.detail)
        self.result = result


@dataclasses.dataclass(frozen=True)
class _Crash:
    """What pytest's summary line and the JUnit ``message`` attribute show of a failure."""

    message: str

    def __str__(self) -> str:
        return self.message


class CheckFailureRepr(TerminalRepr):
    """A failing check's report: its verdict, the rule it breaks, the hint, the root cause."""

    def __init__(self, lines: Sequence[str], message: str) -> None:
        self.lines = list(lines)
        self.reprcrash = _Crash(message)

    def toterminal(self, tw: TerminalWriter) -> None:
        for line in self.lines:
            tw.line(line, red=line is self.lines[0])


class LpjsonItem(pytest.Item):
    """One check of the probe, run against the plugin's server."""

    def __init__(self, *, check: Check, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.check = check
        words = {check.name, check.group, check.rule}
        if check.group in FRAMING_GROUPS:
            words.add("framing")
        self.extra_keyword_matches.update(words)
        for word in words:
            self.keywords[word] = True
        self.add_marker(pytest.mark.lpjson(check=check.name, group=check.group, rule=check.rule))

    @property
    def probe(self) -> _Probe:
        probe = _probe_of(self.config)
        assert probe is not None, "lpjson items exist only when the plugin is active"
        return probe

    def setup(self) -> None:
        try:
            self.probe.address()
            return
        except ServerUnavailable as exc:
            why = str(exc)
        # Every check would fail the same way: say it once and stop the session.
        self.session.shouldstop = "the lpjson server under test is unavailable"
        pytest.fail(why, pytrace=False)

    def runtest(self) -> None:
        result = self.probe.result_for(self.check)
        for name, text in result.attachments.items():
            self.add_report_section("call", f"lpjson {name}", text)
        if result.notes:
            self.add_report_section("call", "lpjson notes", "\n".join(result.notes))
        if result.status == "skip":
            pytest.skip(result.detail)
        if result.status == "fail":
            raise CheckFailure(result)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, CheckFailure):
            return self._failure_repr(excinfo.value.result)
        return super().repr_failure(excinfo, style)

    def _failure_repr(self, result: CheckResult) -> CheckFailureRepr:
        from harness.probe.report import breaks, status_label

        head = f"{self.check.name}: {status_label(result)} in {result.seconds:.2f}s"
        if result.cause is not None:
            head += f", because {result.cause} fails (see test_lpjson[{result.cause}])"
        lines = [head, result.detail, breaks(self.check.rule)]
        if result.cause is not None:
            root = self.probe.results.get(result.cause)
            if root is not None and root.hint:
                lines.append(f"fix {result.cause} first: {root.hint}")
        elif self.check.hint:
            lines.append(f"hint: {self.check.hint}")
        rerun = self.probe.rerun(self.check)
        if rerun is not None:
            lines.append(f"rerun: {rerun}")
        return CheckFailureRepr(lines, f"{status_label(result)}: {result.detail}")

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, self.name


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def lpjson_server(pytestconfig: pytest.Config) -> tuple[str, int]:
    """The address ``(host, port)`` of the server under test: the one ``--lpjson-cmd`` started
    (restarted first if it had died) or ``--lpjson-target``. Skips without those options."""
    probe = _probe_of(pytestconfig)
    if probe is None:
        pytest.skip(f"lpjson_server {_NOT_ACTIVE}")
    try:
        return probe.address()
    except ServerUnavailable as exc:
        why = str(exc)
    pytest.fail(why, pytrace=False)


@pytest.fixture
def lpjson_client(pytestconfig: pytest.Config, lpjson_server: tuple[str, int]) -> Iterator[Client]:
    """A :class:`harness.Client` connected to the server under test, closed after the test."""
    from harness.client import Client

    probe = _probe_of(pytestconfig)
    scale = probe.settings.scale if probe is not None else 1.0
    host, port = lpjson_server
    with Client(host, port, timeout=5.0 * scale) as client:
        yield client
