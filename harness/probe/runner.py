"""Running checks: each in its own thread, bounded, isolated from the others.

A check gets fresh connections and a deadline. If it overruns its bound (plus a
grace period), its connections are closed under it, which unblocks any socket
call, and the verdict is ``fail``/``unsafe``: a hung server is a verdict, not a
hung probe. Before each check the target must accept a connection; once it
stops, the remaining checks are skipped with that reason. After a ``spec``
failure a fresh connection must still be answered, or the failure is upgraded
to ``unsafe`` (the server died or stopped serving).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.probe.checks import Check, CheckContext, CheckFailed, Severity, still_served
from harness.probe.wire import CheckTimeout, Recorder, Transcript
from harness.spec import rule

__all__ = ["CheckResult", "ProbeResult", "Target", "run_check", "run_checks"]

log = logging.getLogger(__name__)

#: Extra time a check thread gets past its deadline before its connections are cut.
_GRACE = 1.0


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
    name: str
    status: str  # "pass" | "fail" | "skip"
    detail: str
    seconds: float
    severity: Severity | None = None
    transcripts: list[Transcript] = field(default_factory=list)
    #: The id of the rule of docs/PROTOCOL.md the check tests (see :data:`harness.spec.RULES`).
    rule: str | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "name": self.name,
            "status": self.status,
            "detail": self.detail,
            "seconds": round(self.seconds, 3),
        }
        if self.rule is not None:
            data["rule"] = self.rule
            data["spec"] = rule(self.rule).ref
        if self.severity is not None:
            data["severity"] = self.severity
        return data


@dataclass
class ProbeResult:
    target: Target
    seed: int
    scale: float
    results: list[CheckResult]
    seconds: float

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
    def ok(self) -> bool:
        return bool(self.results) and all(r.status == "pass" for r in self.results)


def reachable(target: Target, timeout: float) -> str | None:
    """None when the target accepts a TCP connection, else why not."""
    try:
        with socket.create_connection((target.host, target.port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


def run_check(check: Check, target: Target, seed: int = 0, scale: float = 1.0) -> CheckResult:
    """Run one check against ``target`` within ``check.timeout * scale`` seconds."""
    bound = check.timeout * scale
    started = time.monotonic()
    recorder = Recorder(target.host, target.port, started + bound)
    ctx = CheckContext(recorder, seed, scale)
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
            served(CheckContext(after, seed, scale), "a fresh connection", "afterwards")
        except (CheckFailed, CheckTimeout, OSError) as exc:
            why = exc.detail if isinstance(exc, CheckFailed) else str(exc)
            result.detail += f"; {why}"
            result.severity = "unsafe"
        finally:
            after.close_all()
    result.seconds = time.monotonic() - started
    result.transcripts = recorder.transcripts
    result.rule = check.rule
    return result


def run_checks(
    checks: Sequence[Check],
    target: Target,
    seed: int = 0,
    scale: float = 1.0,
    progress: Callable[[int, int, Check, CheckResult | None], None] | None = None,
) -> ProbeResult:
    """Run ``checks`` one after another; ``progress`` hears of each start and end."""
    started = time.monotonic()
    results: list[CheckResult] = []
    down: str | None = None
    for index, check in enumerate(checks):
        if progress is not None:
            progress(index, len(checks), check, None)
        t0 = time.monotonic()
        if down is None:
            refused = reachable(target, max(0.5, 2.0 * scale))
            if refused is not None and results:
                last = next((r.name for r in reversed(results) if r.status == "fail"), results[-1].name)
                down = f"the target no longer accepts connections ({refused}) since {last!r}"
        if down is not None:
            result = CheckResult(check.name, "skip", down, time.monotonic() - t0, rule=check.rule)
        else:
            result = run_check(check, target, seed, scale)
        log.info("%s: %s (%s)", check.name, result.status, result.detail)
        results.append(result)
        if progress is not None:
            progress(index, len(checks), check, result)
    return ProbeResult(target, seed, scale, results, time.monotonic() - started)
