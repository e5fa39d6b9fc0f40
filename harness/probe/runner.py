"""Running checks: each in its own thread, bounded, isolated from the others.

A check gets fresh connections and a deadline. If it overruns its bound (plus a
grace period), its connections are closed under it, which unblocks any socket
call, and the verdict is ``fail``/``unsafe``: a hung server is a verdict, not a
hung probe. Before each check the target must accept a connection; once it
stops, the remaining checks are skipped with that reason. After a ``spec``
failure a fresh connection must still be answered, or the failure is upgraded
to ``unsafe`` (the server died or stopped serving).

Root causes. Each check names the checks it ``depends`` on; :func:`run_checks`
runs them in an order where dependencies come first, one at a time. A check
whose dependency failed (directly, or through a check that itself runs as a
consequence) still runs, but after all the others, concurrently (``workers``
threads) and with short waits (:data:`~harness.probe.checks.QUICK_WAIT`): its
verdict is already explained, and a server that hangs on everything then costs
seconds, not minutes. If it fails, the result names its root cause
(:attr:`CheckResult.cause`), the failed check with no failed dependency that
explains it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from harness.apps import App
from harness.probe.checks import Check, CheckContext, CheckFailed, Severity, still_served
from harness.probe.profiles import STRICT, Profile
from harness.probe.wire import CheckTimeout, Recorder, Transcript
from harness.spec import rule

__all__ = [
    "CheckObserver",
    "CheckResult",
    "ProbeResult",
    "Target",
    "order_checks",
    "reachable",
    "run_check",
    "run_checks",
]

log = logging.getLogger(__name__)

#: Extra time a check thread gets past its deadline before its connections are cut.
_GRACE = 1.0
#: Threads running the checks whose dependency failed.
DEFAULT_WORKERS = 8


@dataclass(frozen=True)
class Target:
    host: str
    port: int
    embedded: bool = False

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass
class CheckResult:
    """One check's verdict.

    ``status`` is ``"pass"``, ``"fail"`` or ``"skip"``; a failure has a ``severity``
    (``"spec"`` or ``"unsafe"``) and, when a failed dependency explains it, the name of
    that root cause in ``cause`` (``detail`` then starts "fails because ... fails").
    ``notes`` say how a profile's relaxation was used ("closes after one answer").
    ``attachments`` carry what an observer adds (a supervised server's output).
    """

    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    seconds: float
    severity: Severity | None = None
    transcripts: list[Transcript] = field(default_factory=list)
    #: The id of the rule of docs/PROTOCOL.md the check tests (see :data:`harness.spec.RULES`).
    rule: str | None = None
    group: str = ""
    hint: str = ""
    cause: str | None = None
    notes: list[str] = field(default_factory=list)
    attachments: dict[str, str] = field(default_factory=dict)
    #: The check itself passed; a process monitor failed it (the server printed a traceback,
    #: or its memory grew). Such a failure explains no other check's.
    by_monitor: bool = False

    @property
    def is_root_cause(self) -> bool:
        return self.status == "fail" and self.cause is None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "group": self.group,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }
        if self.rule is not None:
            data["rule"] = self.rule
            data["spec"] = rule(self.rule).ref
        if self.severity is not None:
            data["severity"] = self.severity
        if self.status == "fail":
            data["hint"] = self.hint
            data["cause"] = self.cause
        if self.notes:
            data["notes"] = list(self.notes)
        if self.attachments:
            data["attachments"] = dict(self.attachments)
        return data


@dataclass
class ProbeResult:
    target: Target
    seed: int
    scale: float
    results: list[CheckResult]
    seconds: float
    profile: str = "strict"
    app: str = "search"
    protocol: str = "lpjson"
    #: The command of a server the probe started and supervised (``harness probe -- CMD``),
    #: with its ``{host}``/``{port}`` placeholders; None for a target it was given.
    command: tuple[str, ...] | None = None
    #: ``--idle-timeout``: the longest idle timeout the run accepted (None: L2 not judged).
    idle_timeout: float | None = None

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status == "fail" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skip" for r in self.results)

    @property
    def root_causes(self) -> list[CheckResult]:
        """The failures no failed dependency explains, in run order."""
        return [r for r in self.results if r.is_root_cause]

    def consequences(self, cause: str) -> list[CheckResult]:
        """The failures explained by the root cause ``cause``."""
        return [r for r in self.results if r.status == "fail" and r.cause == cause]

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == "pass" for r in self.results)


class CheckObserver(Protocol):
    """Hears of each check as it runs: a process supervisor marks the server's output in
    ``before`` and, in ``after``, attaches it to the result (``result.attachments``) or
    turns the result into a failure (a crash, a traceback, memory growth for a check with
    ``measures_memory``). Checks that run as consequences run concurrently: pass
    ``workers=1`` to :func:`run_checks` when output must be told apart check by check.

    An observer may also have ``ready() -> str | None`` (optional, looked up with
    ``getattr``): :func:`run_checks` then asks it, instead of opening a test connection,
    whether the target accepts connections (None) or why not; a supervisor restarts its
    server there when it finds it dead."""

    def before(self, check: Check) -> None: ...

    def after(self, check: Check, result: CheckResult) -> None: ...


def reachable(target: Target, timeout: float) -> str | None:
    """None when the target accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def run_check(
    check: Check,
    target: Target,
    seed: int = 0,
    scale: float = 1.0,
    *,
    profile: Profile = STRICT,
    app: App | None = None,
    quick: bool = False,
    monitored: bool = False,
) -> CheckResult:
    """Run one check against ``target`` within ``check.timeout * scale`` seconds.

    ``profile`` is the reading of the protocol it is judged by, ``app`` the application
    whose answers are expected (the search application by default); ``quick`` shortens
    every wait (the check runs as a consequence of a failed dependency); ``monitored``
    says a process monitor measures the server meanwhile (:attr:`CheckContext.monitored`).
    """
    bound = check.timeout * scale
    started = time.monotonic()
    recorder = Recorder(target.host, target.port, started + bound)
    ctx = CheckContext(recorder, seed, scale, profile, app, quick, monitored)
    outcome: list[CheckResult] = []

    def body() -> None:
        try:
            detail = check.run(ctx)
            outcome.append(CheckResult(check.name, "pass", detail, 0.0))
        except CheckFailed as failure:
            outcome.append(CheckResult(check.name, "fail", failure.detail, 0.0, failure.severity))
        except CheckTimeout as exc:
            outcome.append(
                CheckResult(
                    check.name,
                    "fail",
                    f"the check's bound of {bound:.1f}s ran out ({exc}): the server hangs",
                    0.0,
                    "unsafe",
                )
            )
        except OSError as exc:
            outcome.append(CheckResult(check.name, "fail", f"socket error: {exc}", 0.0, "unsafe"))
        except Exception as exc:  # a bug in the probe must not take the other checks down
            log.exception("check %s raised", check.name)
            outcome.append(CheckResult(check.name, "fail", f"probe error: {exc!r}", 0.0, "spec"))

    thread = threading.Thread(target=body, name=f"probe-{check.name}", daemon=True)
    thread.start()
    thread.join(bound + _GRACE)
    if thread.is_alive():
        recorder.abort_all()
        thread.join(_GRACE)
        result = CheckResult(
            check.name,
            "fail",
            f"did not finish within its bound of {bound:.1f}s: the server hangs",
            0.0,
            "unsafe",
        )
    else:
        result = outcome[0]
    recorder.close_all()
    if result.status == "fail" and result.severity == "spec":
        # Did that also take the server down, or stop it serving others?
        after = Recorder(target.host, target.port, time.monotonic() + 2.0 * scale + 0.5)
        # A check of another protocol (harness.probe.echo) brings its own "still serving" probe.
        served: Callable[[CheckContext, str, str], None] = getattr(check, "still_served", still_served)
        try:
            served(CheckContext(after, seed, scale, profile, app, quick), "a fresh connection", "afterwards")
        except (CheckFailed, CheckTimeout, OSError) as exc:
            why = exc.detail if isinstance(exc, CheckFailed) else str(exc)
            result.detail += f"; {why}"
            result.severity = "unsafe"
        finally:
            after.close_all()
    result.seconds = time.monotonic() - started
    result.transcripts = recorder.transcripts
    result.rule = check.rule
    result.group = check.group
    result.hint = check.hint
    result.notes = list(ctx.notes) if result.status == "pass" else []
    return result


def order_checks(checks: Sequence[Check]) -> list[Check]:
    """``checks`` in an order where each comes after the dependencies among them (stable:
    the given order where it already is one). A dependency cycle is a ``ValueError``."""
    names = {check.name for check in checks}
    done: set[str] = set()
    ordered: list[Check] = []
    pending = list(checks)
    while pending:
        ready = [c for c in pending if all(d in done or d not in names for d in c.depends)]
        if not ready:
            raise ValueError(f"dependency cycle among checks: {', '.join(c.name for c in pending)}")
        first = ready[0]
        ordered.append(first)
        done.add(first.name)
        pending.remove(first)
    return ordered


def run_checks(
    checks: Sequence[Check],
    target: Target,
    seed: int = 0,
    scale: float = 1.0,
    progress: Callable[[int, int, Check, CheckResult | None], None] | None = None,
    *,
    profile: Profile = STRICT,
    app: App | None = None,
    protocol: str = "lpjson",
    workers: int = DEFAULT_WORKERS,
    observer: CheckObserver | None = None,
) -> ProbeResult:
    """Run ``checks``: dependencies first, one at a time; then, concurrently, the checks whose
    dependencies failed (see the module's docstring). ``progress`` hears of each start and end
    (from worker threads too, one call at a time)."""
    started = time.monotonic()
    ordered = order_checks(checks)
    total = len(ordered)
    index_of = {check.name: i for i, check in enumerate(ordered)}
    results: dict[str, CheckResult] = {}
    #: check name -> its root cause, for the checks that run as consequences
    deferred: dict[str, str] = {}
    lock = threading.Lock()
    down: str | None = None

    # A supervisor knows better than a test connection whether its server is up (and restarts
    # it when it is not); a test connection would also be output of the next check's.
    ready: Callable[[], str | None] | None = getattr(observer, "ready", None)

    def accepts() -> str | None:
        return ready() if ready is not None else reachable(target, max(0.5, 2.0 * scale))

    def tell(check: Check, result: CheckResult | None) -> None:
        if progress is not None:
            with lock:
                progress(index_of[check.name], total, check, result)

    def run_one(check: Check, quick: bool) -> CheckResult:
        if observer is not None:
            observer.before(check)
        result = run_check(
            check, target, seed, scale, profile=profile, app=app, quick=quick, monitored=observer is not None
        )
        if observer is not None:
            observer.after(check, result)
        return result

    def root_cause(check: Check) -> str | None:
        for dep in check.depends:
            if dep in deferred:
                return deferred[dep]
            if dep in results and results[dep].status == "fail" and not results[dep].by_monitor:
                return results[dep].cause or dep
        return None

    for check in ordered:
        cause = root_cause(check)
        if cause is not None:
            deferred[check.name] = cause
            continue
        tell(check, None)
        t0 = time.monotonic()
        observed = False
        if down is None:
            refused = accepts()
            if refused is not None and results:
                done = [r for r in results.values() if r.status != "skip"]
                last = next((r.name for r in reversed(done) if r.status == "fail"), done[-1].name)
                down = f"the target no longer accepts connections ({refused}) since {last!r}"
        if observer is not None and down is None:
            observer.before(check)
            observed = True
        if down is not None:
            result = _skipped(check, down, time.monotonic() - t0)
        else:
            result = run_check(
                check,
                target,
                seed,
                scale,
                profile=profile,
                app=app,
                quick=False,
                monitored=observer is not None,
            )
        if observer is not None and observed:
            observer.after(check, result)
        log.info("%s: %s (%s)", check.name, result.status, result.detail)
        results[check.name] = result
        tell(check, result)

    if deferred:
        later = [check for check in ordered if check.name in deferred]
        if down is None:
            refused = accepts()
            if refused is not None:
                down = f"the target no longer accepts connections ({refused})"

        def consequence(check: Check) -> CheckResult:
            tell(check, None)
            cause = deferred[check.name]
            if down is not None:
                result = _skipped(check, f"{down}; and its dependency failed ({cause})", 0.0)
            else:
                result = run_one(check, quick=True)
                if result.status == "fail":
                    result.cause = cause
                    result.detail = f"fails because {cause} fails: {result.detail}"
            log.info("%s: %s (%s)", check.name, result.status, result.detail)
            tell(check, result)
            return result

        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="probe-consequence") as pool:
            for check, result in zip(later, pool.map(consequence, later), strict=True):
                results[check.name] = result

    return ProbeResult(
        target,
        seed,
        scale,
        [results[check.name] for check in ordered],
        time.monotonic() - started,
        profile=profile.name,
        app=app.name if app is not None else "search",
        protocol=protocol,
    )


def _skipped(check: Check, why: str, seconds: float) -> CheckResult:
    return CheckResult(check.name, "skip", why, seconds, rule=check.rule, group=check.group, hint=check.hint)
