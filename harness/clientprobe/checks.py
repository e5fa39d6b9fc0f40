"""The client checks: one misbehaviour of the server each, and what the client must do.

Each :class:`ClientCheck` has a plan (how the hostile server answers, built from the
real answer to the client's request), what the client is expected to do
(:class:`Expect`), the rule of docs/PROTOCOL.md it exercises and its time bound. The
same plans are the kinds of ``harness serve --chaos``.
"""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.clientprobe.hostile import Close, Pause, Plan, Reset, Send
from harness.clientprobe.responses import (
    HUGE_LENGTH,
    VIOLATING,
    Answer,
    binary_answer,
    huge_length_answer,
)
from harness.violations import VIOLATIONS

__all__ = [
    "CHECKS",
    "DEFAULT_BOUND",
    "DRIP_GAP",
    "SPLIT_PAUSE",
    "STARTUP_ALLOWANCE",
    "ClientCheck",
    "Expect",
    "get_check",
    "select_checks",
]

#: Seconds (times ``--timeout``) a client has to finish each check, after it started.
DEFAULT_BOUND = 10.0
#: Seconds added to every bound, not scaled: starting an interpreter on a busy machine.
STARTUP_ALLOWANCE = 3.0
#: The pause between two pieces of a split answer: long enough that the client reads them apart.
SPLIT_PAUSE = 0.05
#: The pause between two bytes of a dripped answer, and how many bytes are dripped at most.
DRIP_GAP = 0.005
DRIP_BYTES = 400


class Expect(enum.Enum):
    """What a client must do in a check."""

    #: Print the answer (its :attr:`~harness.clientprobe.responses.Answer.marker`) and exit 0.
    ANSWER = "answer"
    #: Fail: exit non-zero or report an error (not a traceback with exit 0), within the
    #: bound, never printing the answer as if it were valid.
    REFUSE = "refuse"


@dataclass(frozen=True)
class ClientCheck:
    """One check: how the server misbehaves (``plan``) and what the client must do."""

    name: str
    rule: str
    expect: Expect
    summary: str
    plan: Callable[[Answer], Plan | str]
    hint: str = ""
    bound: float = DEFAULT_BOUND

    def bound_for(self, scale: float) -> float:
        """The check's time bound in seconds at ``--timeout`` ``scale``."""
        return self.bound * scale + STARTUP_ALLOWANCE


def _pieces(data: bytes, cuts: Sequence[int], pause: float = SPLIT_PAUSE) -> list[Send | Pause]:
    points = sorted({cut for cut in cuts if 0 < cut < len(data)})
    steps: list[Send | Pause] = []
    start = 0
    for cut in [*points, len(data)]:
        if steps:
            steps.append(Pause(pause))
        steps.append(Send(data[start:cut]))
        start = cut
    return steps


def _whole(answer: Answer) -> Plan:
    return [Send(answer.wire)]


def _split_prefix(answer: Answer) -> Plan:
    return _pieces(answer.wire, [1])


def _split_header(answer: Answer) -> Plan:
    end = answer.header_end
    return _pieces(answer.wire, [3, (2 + end) // 2, end - 1])


def _split_content(answer: Answer) -> Plan:
    wire, end = answer.wire, answer.header_end
    # The middle of the content: inside a multi-byte UTF-8 character when there is one.
    middle = end + (len(wire) - end) // 2
    for at in range(end, len(wire)):
        if 0x80 <= wire[at] < 0xC0:
            middle = at
            break
    return _pieces(wire, [end + 1, middle, len(wire) - 1])


def _split_boundaries(answer: Answer) -> Plan:
    return _pieces(answer.wire, [2, answer.header_end])


def _coalesced(answer: Answer) -> Plan:
    # A second, unasked-for message right behind the answer, in the same segment.
    return [Send(answer.wire + answer.wire)]


def _drip(answer: Answer) -> Plan:
    wire = answer.wire
    dripped = wire[:DRIP_BYTES]
    steps = _pieces(wire, range(1, len(dripped) + 1), DRIP_GAP)
    return steps


def _huge_length(answer: Answer) -> Plan:
    return [Send(huge_length_answer(answer))]


def _close_early(answer: Answer) -> Plan:
    wire, end = answer.wire, answer.header_end
    return [Send(wire[: end + (len(wire) - end) // 2]), Close()]


def _reset(answer: Answer) -> Plan:
    wire, end = answer.wire, answer.header_end
    return [Send(wire[: end + (len(wire) - end) // 2]), Pause(SPLIT_PAUSE), Reset()]


def _silent(answer: Answer) -> Plan:
    return []


def _binary(answer: Answer) -> Plan | str:
    if answer.is_json:
        return "needs a binary request (e.g. ACTION VALUE = binary hello): this client sent a text/json one"
    return [Send(binary_answer(answer))]


def _violation(code: str) -> Callable[[Answer], Plan | str]:
    spoil, json_only = VIOLATING[code]

    def plan(answer: Answer) -> Plan | str:
        if json_only and not answer.is_json:
            return "needs a text/json answer (a search request): this client sent a binary request"
        data = spoil(answer)
        if code == "incomplete-message":
            return [Send(data), Close()]
        return [Send(data)]

    return plan


_REFUSE_HINT = (
    "check the response as harness.Decoder does and exit non-zero with a one-line error "
    "(docs/codec.md); never print a result read from a broken response"
)

_BASE = [
    ClientCheck(
        "whole",
        "A1",
        Expect.ANSWER,
        "the right answer in one segment, the connection left open: print it and exit 0",
        _whole,
        "read exactly 2 + N + content-length bytes; do not wait for the server to close",
    ),
    ClientCheck(
        "split-prefix",
        "F2",
        Expect.ANSWER,
        "the answer in two sends cut inside the 2-byte prefix",
        _split_prefix,
        "one recv() may return a single byte: buffer until the 2-byte prefix is in",
    ),
    ClientCheck(
        "split-header",
        "F2",
        Expect.ANSWER,
        "the answer cut at three points inside the JSON header",
        _split_header,
        "buffer until the whole JSON header (N bytes) is in before decoding it",
    ),
    ClientCheck(
        "split-content",
        "F2",
        Expect.ANSWER,
        "the answer cut inside the content (one cut inside a multi-byte UTF-8 character)",
        _split_content,
        "buffer until content-length bytes are in; decode the content whole, not piece by piece",
    ),
    ClientCheck(
        "split-boundaries",
        "F2",
        Expect.ANSWER,
        "the prefix, the header and the content in three separate sends",
        _split_boundaries,
        "keep reading after each part until the next one is complete",
    ),
    ClientCheck(
        "coalesced",
        "F3",
        Expect.ANSWER,
        "the answer and a second message behind it in one segment",
        _coalesced,
        "take exactly content-length bytes as the content; bytes after it belong to the next message",
    ),
    ClientCheck(
        "drip",
        "F2",
        Expect.ANSWER,
        f"the answer one byte per send, {DRIP_GAP * 1000:g} ms apart (at most {DRIP_BYTES} bytes)",
        _drip,
        "a timeout bounds the wait for the next byte, not the whole answer",
    ),
]

_VIOLATION_CHECKS = [
    ClientCheck(
        f"violation-{code}",
        VIOLATIONS[code].rule,
        Expect.REFUSE,
        f"the answer spoiled: {VIOLATIONS[code].summary}",
        _violation(code),
        _REFUSE_HINT,
    )
    for code in VIOLATING
]

_END = [
    ClientCheck(
        "huge-length",
        "L1",
        Expect.REFUSE,
        f"the answer's header declares {HUGE_LENGTH} content bytes (1 TiB): give up, do not wait or allocate",
        _huge_length,
        "refuse a content-length over a limit as soon as the header is read (harness.Decoder's "
        "max_content_length); never allocate the declared length up front",
    ),
    ClientCheck(
        "close-early",
        "F4",
        Expect.REFUSE,
        "the server closes (FIN) in the middle of the answer's content",
        _close_early,
        "recv() returning b'' means the server closed: report an incomplete answer and exit non-zero",
    ),
    ClientCheck(
        "reset",
        "F4",
        Expect.REFUSE,
        "the server resets the connection (RST) in the middle of the answer's content",
        _reset,
        "catch ConnectionResetError and report it in one line, exit non-zero",
    ),
    ClientCheck(
        "silent",
        "L2",
        Expect.REFUSE,
        "the server reads the request and never answers: give up within the bound",
        _silent,
        "set a timeout (socket.settimeout, asyncio.wait_for, select with a deadline) and exit "
        "non-zero when it runs out",
    ),
    ClientCheck(
        "binary",
        "C5",
        Expect.ANSWER,
        "a binary answer whose content is not UTF-8 (binary requests only): show it without crashing",
        _binary,
        "binary content is opaque bytes: print its repr(), never .decode() it",
    ),
]

#: Every check, in the order they run.
CHECKS: dict[str, ClientCheck] = {check.name: check for check in [*_BASE, *_VIOLATION_CHECKS, *_END]}


def get_check(name: str) -> ClientCheck:
    """The check (or chaos kind) ``name``; ``ValueError`` names the ones there are."""
    try:
        return CHECKS[name]
    except KeyError:
        raise ValueError(f"no check {name!r} (choose from {', '.join(CHECKS)})") from None


def select_checks(include: Sequence[str], exclude: Sequence[str]) -> list[ClientCheck]:
    """The checks matching any ``include`` glob (all when none) and no ``exclude`` glob.

    ``ValueError`` for a glob that matches no check (a typo would silently run nothing).
    """
    for pattern in [*include, *exclude]:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in CHECKS):
            raise ValueError(f"no check matches {pattern!r} (see --list)")
    return [
        check
        for name, check in CHECKS.items()
        if (not include or any(fnmatch.fnmatchcase(name, p) for p in include))
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    ]
