"""The probe's process monitor: a :class:`~harness.probe.runner.CheckObserver` around a
:class:`~harness.supervise.ServerUnderTest`.

``harness probe -- CMD ARGS...`` (and the pytest plugin's ``--lpjson-cmd``) start the
server under test themselves; :class:`ServerObserver` then watches it check by check:

- before each check it marks the server's output and, for a check with
  ``measures_memory``, starts sampling its RSS;
- after it, what the server printed meanwhile is attached to the result
  (``result.attachments["server output"]``); the server dying fails the check as
  ``unsafe`` with its exit status and last stderr lines, and the server is restarted
  so that the next check finds it listening; a Python traceback printed meanwhile
  fails the check ("the server raised KeyError: 'value' while handling search
  ...") unless tracebacks are allowed; RSS growth over the server's ``rss_limit``
  fails it as ``unsafe``.

Run the checks with ``workers=1`` (:func:`run_supervised` does): output and deaths can
only be told apart check by check when one check runs at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.apps import App
from harness.errors import ProtocolError
from harness.frames import FrameReader
from harness.message import Message
from harness.probe.checks import Check, describe_request
from harness.probe.profiles import STRICT, Profile
from harness.probe.runner import CheckResult, ProbeResult, Target, run_checks
from harness.supervise import (
    Mark,
    RssSample,
    RssSampler,
    ServerStartError,
    ServerUnderTest,
    SupervisorError,
)

__all__ = ["OUTPUT_ATTACHMENT", "ServerObserver", "describe_input", "run_supervised"]

log = logging.getLogger(__name__)

#: The name of the attachment holding what the server printed during a check.
OUTPUT_ATTACHMENT = "server output"
#: Lines of the server's output attached to one check's result (the last ones).
_ATTACHED_LINES = 200
#: How long a server whose check failed gets to finish dying before it is judged alive.
_DEATH_WAIT = 0.25
#: Bytes of a check's first connection decoded to describe its input.
_DESCRIBED_BYTES = 1 << 16
#: Silence awaited after a (re)start before the first check's mark.
_SETTLE_QUIET = 0.1


def describe_input(check: Check, result: CheckResult) -> str:
    """What the check sent, in a few words: its first request (``search 'None'``,
    ``binary b'...'``) when its first connection's bytes start with one, else its summary."""
    for transcript in result.transcripts:
        sent = transcript.sent[:_DESCRIBED_BYTES]
        if not sent:
            continue
        reader = FrameReader(max_content_length=1 << 62)
        try:
            frames = reader.feed(sent)
        except ProtocolError:
            frames = []
        if frames:
            try:
                first = describe_request(Message.from_frame(frames[0]))
            except Exception:  # a request the probe made invalid on purpose
                break
            more = f" (and {len(frames) - 1} more)" if len(frames) > 1 else ""
            return f"{check.name}'s request {first}{more}"
        break
    return f"{check.name}'s input ({check.summary})"


@dataclass
class ServerObserver:
    """Watches ``server`` (already started) around each check; see the module documentation.

    ``restarts`` counts the restarts after a death; ``start_error`` holds the error of a
    restart that failed (the checks after it are then skipped by the runner, since the
    target no longer accepts connections).
    """

    server: ServerUnderTest
    #: Tracebacks fail no check (besides the server's own ``allow_tracebacks``): the
    #: profile's ``prints_tracebacks``.
    allow_tracebacks: bool = False
    restarts: int = 0
    start_error: ServerStartError | None = None
    _mark: Mark | None = None
    _sampler: RssSampler | None = None
    _last: CheckResult | None = None
    _last_check: Check | None = field(default=None, repr=False)

    def ready(self) -> str | None:
        """None when the server runs (restarted if it had died), else why it does not."""
        self._revive()
        if self.server.alive:
            return None
        if self.start_error is not None:
            return f"it did not start again: {self.start_error.headline}"
        return "the server under test is not running"

    def before(self, check: Check) -> None:
        self._revive()
        self._mark = self.server.mark()
        self._sampler = None
        if check.measures_memory and self.server.alive:
            self._sampler = self.server.rss_sampler().start()

    def _revive(self) -> None:
        if not self.server.alive and self.start_error is None:
            # It died after the previous check had ended: that check's input killed it.
            death = self.server.died_since(self._mark) if self._mark is not None else None
            if death is not None and self._last is not None and self._last_check is not None:
                self._fail(
                    self._last,
                    f"the server {death.summary} just after the check" + self._tail(death.stderr_tail),
                    "unsafe",
                )
            self._mark = None
            self._restart()

    def after(self, check: Check, result: CheckResult) -> None:
        mark = self._mark
        if mark is None:  # after() without before(): nothing to compare with
            return
        rss: RssSample | None = self._sampler.stop() if self._sampler is not None else None
        self._sampler = None
        wait = _DEATH_WAIT if result.status == "fail" else 0.0
        seen = self.server.observe(mark, rss=rss, wait=wait)
        self._last, self._last_check = result, check
        if seen.output:
            shown = seen.output[-_ATTACHED_LINES:]
            cut = len(seen.output) - len(shown)
            text = "\n".join(str(line) for line in shown)
            if cut:
                text = f"({cut} earlier lines left out)\n{text}"
            result.attachments[OUTPUT_ATTACHMENT] = text
        if rss is not None:
            result.attachments["server memory"] = rss.summary
        if result.status == "skip":
            return
        if seen.death is not None:
            self._fail(
                result,
                f"the server {seen.death.summary} while handling {describe_input(check, result)}"
                + self._tail(seen.death.stderr_tail),
                "unsafe",
            )
            self._restart()
            return
        problems: list[str] = []
        allowed = self.allow_tracebacks or self.server.allow_tracebacks
        if not allowed and seen.tracebacks:
            raised = "; ".join(dict.fromkeys(tb.summary for tb in seen.tracebacks))
            problems.append(f"the server {raised} while handling {describe_input(check, result)}")
        if rss is not None and rss.over_limit:
            problems.append(f"the server's {rss.summary}")
            self._fail(result, "; ".join(problems), "unsafe")
        elif problems:
            self._fail(result, "; ".join(problems), "spec")

    def settle(self) -> None:
        """Let the server print what a start prints (and what the readiness test's empty
        connection makes it print), so that none of it is taken for the first check's."""
        self.server.settle(quiet=_SETTLE_QUIET, timeout=_SETTLE_QUIET * 10)

    @staticmethod
    def _tail(lines: Sequence[str]) -> str:
        shown = [line.strip() for line in lines[-3:] if line.strip()]
        return f" (last stderr: {' | '.join(shown)})" if shown else " (nothing on its stderr)"

    @staticmethod
    def _fail(result: CheckResult, problem: str, severity: str) -> None:
        """Turn ``result`` into a failure for ``problem`` (added to what the check itself saw)."""
        if result.status == "fail":
            result.detail = f"{problem}; {result.detail}"
            if severity == "unsafe":
                result.severity = "unsafe"
        else:
            result.status = "fail"
            result.by_monitor = True
            result.detail = problem
            result.severity = "unsafe" if severity == "unsafe" else "spec"
            result.notes = []

    def _restart(self) -> None:
        try:
            self.server.restart()
            self.restarts += 1
            self.settle()
            log.info("restarted the server under test (restart %d)", self.restarts)
        except ServerStartError as exc:
            self.start_error = exc
            log.warning("the server under test did not start again: %s", exc.headline)
        except SupervisorError as exc:
            log.warning("cannot restart the server under test: %s", exc)


def run_supervised(
    checks: Sequence[Check],
    server: ServerUnderTest,
    seed: int = 0,
    scale: float = 1.0,
    progress: Callable[[int, int, Check, CheckResult | None], None] | None = None,
    *,
    profile: Profile = STRICT,
    app: App | None = None,
    protocol: str = "lpjson",
) -> tuple[ProbeResult, ServerObserver]:
    """Run ``checks`` against ``server`` (started) under a :class:`ServerObserver`, one at a time."""
    host, port = server.address
    observer = ServerObserver(server, allow_tracebacks=profile.prints_tracebacks)
    observer.settle()
    probe = run_checks(
        checks,
        Target(host, port),
        seed,
        scale,
        progress,
        profile=profile,
        app=app,
        protocol=protocol,
        workers=1,
        observer=observer,
    )
    probe.command = tuple(server.command)
    return probe, observer
