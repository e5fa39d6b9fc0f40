"""What every lpjson check is made of: :class:`Check` (name, rule, hint, dependencies),
the :class:`CheckContext` it runs in (recorded connections, time bounds, seed, profile,
application) and :class:`CheckFailed`, its verdict when the server deviates or is unsafe."""

from __future__ import annotations

import codecs
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from harness.apps import App, search_app
from harness.errors import ContentError, UnsupportedEncoding
from harness.message import Message
from harness.probe.profiles import RELAXATIONS, STRICT, Profile
from harness.probe.wire import CheckTimeout, Recorder, WireConnection
from harness.spec import RULES, SPEC_PATH

Severity = Literal["spec", "unsafe"]
#: What the application says about a request: its answer, or the content error to report.
Outcome = Message | ContentError

#: The JSON header of a request the probe sends, as the guide writes it (byteorder fixed
#: so that every run sends the same bytes).
_BYTEORDER = "little"
#: Pause between chunks meant to reach the server as separate reads.
_SPLIT_PAUSE = 0.03
#: Pause between the rounds of partial sends across connections.
_ROUND_PAUSE = 0.02
#: The longest wait of a check run as a consequence (a dependency failed, so its verdict is
#: already explained): it still shows whether the server answers, without waiting out every bound.
QUICK_WAIT = 0.5


class CheckFailed(Exception):
    """A check's verdict: the server deviates from the spec, or is unsafe."""

    def __init__(self, detail: str, severity: Severity = "spec", *, wrong_answer: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.severity: Severity = severity
        #: An answer came but is not the application's: a matter of the spec, never of safety.
        self.wrong_answer = wrong_answer

    def unsafe_unless_wrong_answer(self, detail: str) -> CheckFailed:
        """This failure seen from another connection: unsafe (it was hurt), unless it only
        got a wrong answer (the application differs; that stays a spec failure)."""
        severity: Severity = "spec" if self.wrong_answer else "unsafe"
        return CheckFailed(detail, severity, wrong_answer=self.wrong_answer)


@dataclass
class CheckContext:
    """What a check gets: its connections' recorder, the seed, the time scale, the
    profile it is judged by, the application that computes the expected answers, and
    ``quick`` when it runs as a consequence of a failed dependency (shorter waits)."""

    recorder: Recorder
    seed: int = 0
    scale: float = 1.0
    profile: Profile = STRICT
    app: App | None = None
    quick: bool = False
    #: A process monitor samples the server's memory around the check (``harness probe --
    #: CMD``): the checks that exist to grow a bad server's memory then push hard; without
    #: one they only do what the wire can judge, briefly.
    monitored: bool = False
    #: Verdict notes a check adds on passing (``"closes after one answer"``).
    notes: list[str] = field(default_factory=list)

    def bound(self, seconds: float) -> float:
        """``seconds`` scaled by ``--timeout`` (at most :data:`QUICK_WAIT` when ``quick``),
        never past the check's own deadline."""
        if self.quick:
            seconds = min(seconds, QUICK_WAIT)
        return min(seconds * self.scale, max(0.0, self.recorder.deadline - time.monotonic()))

    def connect(self, label: str = "", *, rcvbuf: int | None = None) -> WireConnection:
        try:
            return self.recorder.connect(label, rcvbuf=rcvbuf)
        except CheckTimeout:
            raise
        except TimeoutError:
            raise CheckFailed(f"{label or 'a connection'}: connect timed out", "unsafe") from None
        except OSError as exc:
            raise CheckFailed(
                f"{label or 'a connection'}: cannot connect ({exc.strerror or exc}): the server stopped "
                "accepting connections",
                "unsafe",
            ) from None

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def respond(self, request: Message) -> Message:
        """The application's answer (the search application unless the run names another)."""
        app = self.app if self.app is not None else search_app
        return app(request)

    def outcomes(self, request: Message) -> list[Outcome]:
        """What a server may answer to ``request``: first what the spec says (the application's
        answer, or the content error it raises), then what the profile also accepts."""
        try:
            primary: Outcome = self.respond(request)
        except ContentError as error:
            primary = error
        accepted = [primary]
        if isinstance(primary, UnsupportedEncoding) and self.profile.any_codec:
            decoded = _decoded_with_named_codec(request)
            if decoded is not None:
                try:
                    accepted.append(self.respond(decoded))
                except ContentError as error:
                    accepted.append(error)
        return accepted


@dataclass(frozen=True)
class Check:
    """One named check: ``run(ctx)`` returns a detail line or raises :class:`CheckFailed`.

    ``rule`` is the id of the rule of docs/PROTOCOL.md the check tests (``"F2"``,
    see :data:`harness.spec.RULES`): a failure of the check is a breach of that rule.
    ``hint`` says in one line what to fix when it fails. ``depends`` names the checks
    whose failure explains this one's (run first; see :mod:`harness.probe.runner`).
    ``measures_memory`` marks the checks where a bad client could grow the server's
    memory: a process supervisor samples the server's RSS during them.
    ``relaxed_by`` lists the :class:`~harness.probe.profiles.Profile` flags that
    change the verdict.
    """

    name: str
    summary: str
    timeout: float  # seconds at --timeout 1
    run: Callable[[CheckContext], str]
    group: str
    rule: str
    hint: str = ""
    depends: tuple[str, ...] = ()
    measures_memory: bool = False
    relaxed_by: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(
                f"check {self.name!r} names rule {self.rule!r}, which is not in {SPEC_PATH} "
                f"(rules: {', '.join(RULES)})"
            )
        unknown = self.relaxed_by - RELAXATIONS.keys()
        if unknown:
            raise ValueError(f"check {self.name!r} is relaxed by unknown profile flags {sorted(unknown)}")

    def relaxations(self, profile: Profile) -> list[str]:
        """What ``profile`` accepts in this check beyond the spec (one line each)."""
        return [RELAXATIONS[flag] for flag in sorted(self.relaxed_by) if profile.relaxes(flag)]


def _decoded_with_named_codec(request: Message) -> Message | None:
    """``request`` with its content decoded by the codec its header names, re-encoded as
    UTF-8: what a server that runs any codec Python has reads (None when none reads it)."""
    try:
        text = codecs.decode(request.content, request.header["content-encoding"])
    except Exception:  # LookupError, TypeError, UnicodeError, binascii.Error: no text this way
        return None
    if not isinstance(text, str):
        return None
    try:
        return Message.from_bytes(
            text.encode("utf-8"), content_type=request.content_type, encoding="utf-8", byteorder=_BYTEORDER
        )
    except (ValueError, UnicodeError):
        return None
