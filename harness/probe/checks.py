"""The probe's named checks.

Each check talks to the target over fresh, recorded connections
(:class:`~harness.probe.wire.Recorder`), and either returns a one-line detail
(pass) or raises :class:`CheckFailed` saying what went wrong and how bad it is:

- ``spec``: the server deviates from docs/PROTOCOL.md (a wrong answer, a request
  dropped, a connection closed too early);
- ``unsafe``: the server hangs (silence until the time bound), dies (a fresh
  connection is refused or unanswered) or stops serving others.

Every check names the rule of docs/PROTOCOL.md it tests (``rule``, an id of
:data:`harness.spec.RULES`). Expected answers always come from the reference
application (:func:`harness.apps.search_app`); the violation checks send the
canonical example of each row of :data:`harness.violations.VIOLATIONS`, one
check per error code, each judged by the row's rule.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.apps import search_app
from harness.frames import frame
from harness.message import Message
from harness.probe.wire import CheckTimeout, End, Reading, Recorder, WireConnection
from harness.spec import RULES, SPEC_PATH
from harness.violations import VIOLATIONS, Violation

__all__ = [
    "CHECKS",
    "Check",
    "CheckContext",
    "CheckFailed",
    "Severity",
    "check_names",
    "expected_answer",
    "find_check",
    "random_splittings",
]

Severity = Literal["spec", "unsafe"]

#: The JSON header of a request the probe sends, as the guide writes it (byteorder fixed
#: so that every run sends the same bytes).
_BYTEORDER = "little"
#: Pause between chunks meant to reach the server as separate reads.
_SPLIT_PAUSE = 0.05
#: Pause between the rounds of partial sends across connections.
_ROUND_PAUSE = 0.03


class CheckFailed(Exception):
    """A check's verdict: the server deviates from the spec, or is unsafe."""

    def __init__(self, detail: str, severity: Severity = "spec") -> None:
        super().__init__(detail)
        self.detail = detail
        self.severity: Severity = severity


@dataclass
class CheckContext:
    """What a check gets: the recorder for its connections, the seed, the time scale."""

    recorder: Recorder
    seed: int = 0
    scale: float = 1.0

    def bound(self, seconds: float) -> float:
        """``seconds`` scaled by ``--timeout``, never past the check's own deadline."""
        return min(seconds * self.scale, max(0.0, self.recorder.deadline - time.monotonic()))

    def connect(self, label: str = "") -> WireConnection:
        try:
            return self.recorder.connect(label)
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


@dataclass(frozen=True)
class Check:
    """One named check: ``run(ctx)`` returns a detail line or raises :class:`CheckFailed`.

    ``rule`` is the id of the rule of docs/PROTOCOL.md the check tests (``"F2"``,
    see :data:`harness.spec.RULES`): a failure of the check is a breach of that rule.
    """

    name: str
    summary: str
    timeout: float  # seconds at --timeout 1
    run: Callable[[CheckContext], str]
    group: str
    rule: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(
                f"check {self.name!r} names rule {self.rule!r}, which is not in {SPEC_PATH} "
                f"(rules: {', '.join(RULES)})"
            )


# -- requests and their expected answers ------------------------------------------


def search(value: str) -> Message:
    return Message.from_json({"action": "search", "value": value}, byteorder=_BYTEORDER)


def binary(content: bytes) -> Message:
    return Message.from_bytes(content, byteorder=_BYTEORDER)


def expected_answer(request: Message) -> Message:
    """The reference application's answer to ``request``."""
    return search_app(request)


def describe_request(request: Message) -> str:
    if request.is_json:
        body = request.json()
        return f"{body.get('action')} {body.get('value')!r}" if isinstance(body, dict) else "text/json"
    return f"binary {request.content[:16]!r}"


def difference(got: Message, want: Message) -> str | None:
    """Why ``got`` is not the answer ``want`` (None when it is).

    ``byteorder`` is informational (the sender's machine) and not compared;
    ``text/json`` contents are compared as JSON values, other contents byte for byte.
    """
    for key in ("content-type", "content-encoding"):
        if got.header.get(key) != want.header[key]:
            return f"{key} {got.header.get(key)!r}, expected {want.header[key]!r}"
    if want.is_json:
        try:
            value = got.json()
        except Exception as exc:  # a ContentError, or anything a broken answer raises
            return f"content is not readable JSON ({exc})"
        if value != want.json():
            return f"content {_short(value)}, expected {_short(want.json())}"
        return None
    if got.content != want.content:
        return f"content {got.content[:60]!r}, expected {want.content[:60]!r}"
    return None


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def verify_answers(reading: Reading, requests: Sequence[Message], what: str, bound: float) -> str:
    """Raise :class:`CheckFailed` unless ``reading`` holds the answers to ``requests``, in order.

    ``what`` names the connection in the detail (nothing when empty).
    """
    what = f"{what}: " if what else ""
    for index, (got, request) in enumerate(zip(reading.messages, requests, strict=False)):
        problem = difference(got, expected_answer(request))
        if problem is not None:
            ordinal = f" #{index + 1}" if len(requests) > 1 else ""
            raise CheckFailed(f"{what}answer{ordinal} to {describe_request(request)}: {problem}")
    if len(reading.messages) < len(requests):
        where = f"{len(reading.messages)} of {len(requests)} answers"
        if reading.end is End.TIMEOUT:
            raise CheckFailed(f"{what}{where}, then silence for {bound:.1f}s (server hangs)", "unsafe")
        if reading.end is End.MALFORMED:
            raise CheckFailed(f"{what}{where}, then bytes that break the protocol: {reading.error}")
        closed = "closed the connection" if reading.end is End.EOF else "reset the connection"
        raise CheckFailed(f"{what}{where}, then the server {closed}")
    return f"{len(requests)} answer(s) correct"


def exchange(
    ctx: CheckContext,
    requests: Sequence[Message],
    chunks: Sequence[bytes] | None = None,
    *,
    pause: float = 0.0,
    read_bound: float = 3.0,
    label: str = "",
) -> str:
    """Send ``requests`` (as ``chunks`` if given) on a fresh connection and check the answers."""
    conn = ctx.connect(label)
    data = b"".join(r.encode() for r in requests)
    if chunks is None:
        chunks = [data]
    assert b"".join(chunks) == data, "chunks must cover the requests exactly"
    # A send that breaks (the server closed or reset) still leaves the answers it sent
    # before that to be read, so the verdict comes from reading either way.
    conn.send_chunks(chunks, pause)
    bound = ctx.bound(read_bound)
    reading = conn.read_messages(len(requests), bound)
    detail = verify_answers(reading, requests, label, bound)
    conn.close()
    return detail


def still_served(ctx: CheckContext, label: str, why: str) -> None:
    """A fresh connection gets a correct answer, or the check fails as unsafe."""
    request = search("morpheus")
    try:
        conn = ctx.connect(label)
        conn.send(request.encode())
        bound = ctx.bound(2.0)
        verify_answers(conn.read_messages(1, bound), [request], label, bound)
        conn.close()
    except CheckFailed as failure:
        raise CheckFailed(f"{why}: {failure.detail}", "unsafe") from None


# -- answers -------------------------------------------------------------------------


def _answer_check(request: Message) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        exchange(ctx, [request])
        answer = expected_answer(request)
        shown = _short(answer.json()) if answer.is_json else repr(answer.content)
        return f"answered {shown}"

    return run


# -- splitting -----------------------------------------------------------------------


def _header_end(raw: bytes) -> int:
    return 2 + int.from_bytes(raw[:2], "big")


def _check_one_byte(ctx: CheckContext) -> str:
    request = search("morpheus")
    raw = request.encode()
    exchange(ctx, [request], [raw[i : i + 1] for i in range(len(raw))], pause=0.001)
    return f"{len(raw)} sends of 1 byte answered"


def _split_at(cut: Callable[[bytes], int], where: str) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        request = search("ring")
        raw = request.encode()
        at = cut(raw)
        exchange(ctx, [request], [raw[:at], raw[at:]], pause=_SPLIT_PAUSE)
        return f"split at byte {at} of {len(raw)} ({where}) answered"

    return run


def _split_requests() -> list[Message]:
    return [
        search("morpheus"),
        search("ring"),
        search("\U0001f436"),
        search("needle"),
        Message.from_json({"action": "fetch", "value": "ring"}, byteorder=_BYTEORDER),
        binary("binary\U0001f603".encode()),
        binary(bytes(range(256)) * 12),
    ]


def random_splittings(seed: int, count: int = 20) -> Iterator[tuple[Message, list[bytes]]]:
    """``count`` requests cut into chunks at positions drawn from ``random.Random(seed)``.

    The modes follow :func:`harness.strategies.chunkings`: random cut points,
    fixed-size pieces, and a cut right inside the 2-byte prefix or the header.
    """
    rng = random.Random(seed)
    requests = _split_requests()
    for _ in range(count):
        request = rng.choice(requests)
        raw = request.encode()
        n = len(raw)
        mode = rng.choice(["cuts", "cuts", "fixed", "prefix-header"])
        if mode == "fixed":
            size = rng.randint(1, max(1, n // 4))
            cuts = list(range(size, n, size))
        elif mode == "prefix-header":
            cuts = [1, rng.randint(2, _header_end(raw) - 1)]
        else:
            cuts = sorted(rng.sample(range(1, n), rng.randint(1, min(12, n - 1))))
        bounds = [0, *cuts, n]
        yield request, [raw[a:b] for a, b in itertools.pairwise(bounds)]


def _check_random_splittings(ctx: CheckContext) -> str:
    count = 0
    for index, (request, chunks) in enumerate(random_splittings(ctx.seed)):
        cuts = []
        at = 0
        for chunk in chunks[:-1]:
            at += len(chunk)
            cuts.append(at)
        label = f"splitting #{index + 1} (seed {ctx.seed}, cuts {_short(cuts)})"
        exchange(ctx, [request], chunks, pause=0.002, label=label)
        count += 1
    return f"{count} seeded splittings answered (seed {ctx.seed})"


# -- pipelining ----------------------------------------------------------------------


def _pipeline(count: int) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        pool = _split_requests()
        requests = [pool[i % len(pool)] if i % 3 else search(f"needle-{i}") for i in range(count)]
        exchange(ctx, requests, read_bound=3.0 + count * 0.02)
        return f"{count} requests in one send answered in order"

    return run


# -- concurrency -----------------------------------------------------------------------


def _check_many_connections(ctx: CheckContext) -> str:
    count = 50
    conns = [ctx.connect(f"connection {i + 1}") for i in range(count)]
    requests = [search(f"needle-{i}") for i in range(count)]
    for conn, request in zip(conns, requests, strict=True):
        conn.send(request.encode())
    bound = ctx.bound(4.0)
    for i, (conn, request) in enumerate(zip(conns, requests, strict=True)):
        verify_answers(conn.read_messages(1, bound), [request], f"connection {i + 1} of {count}", bound)
    for conn in conns:
        conn.close()
    return f"{count} connections open at once, each answered"


def _check_interleaved(ctx: CheckContext) -> str:
    count, pieces = 10, 6
    conns = [ctx.connect(f"connection {i + 1}") for i in range(count)]
    requests = [search(["morpheus", "ring", "\U0001f436", f"needle-{i}"][i % 4]) for i in range(count)]
    chunked = []
    for request in requests:
        raw = request.encode()
        step = -(-len(raw) // pieces)
        chunked.append([raw[j : j + step] for j in range(0, len(raw), step)])
    for round_ in range(pieces):
        for conn, chunks in zip(conns, chunked, strict=True):
            if round_ < len(chunks):
                conn.send(chunks[round_])
        time.sleep(min(_ROUND_PAUSE, ctx.recorder.remaining()))
    bound = ctx.bound(3.0)
    for i, (conn, request) in enumerate(zip(conns, requests, strict=True)):
        verify_answers(conn.read_messages(1, bound), [request], f"connection {i + 1} of {count}", bound)
    return f"{count} connections sending {pieces} pieces each, round robin, all answered"


# -- connection life -------------------------------------------------------------------


def _check_half_close(ctx: CheckContext) -> str:
    request = search("morpheus")
    conn = ctx.connect()
    conn.send(request.encode())
    conn.shutdown_write()
    bound = ctx.bound(3.0)
    verify_answers(conn.read_messages(1, bound), [request], "after half-close", bound)
    after = conn.read_until_close(ctx.bound(1.0))
    if after.messages:
        raise CheckFailed(f"after half-close: {len(after.messages)} unexpected extra message(s)")
    then = {
        End.EOF: "then the server closed",
        End.RESET: "then the server reset the connection",
        End.TIMEOUT: "the server kept its side open",
        End.MALFORMED: f"then malformed bytes ({after.error})",
        End.COMPLETE: "",
    }[after.end]
    if after.end is End.MALFORMED:
        raise CheckFailed(f"after half-close: answered, {then}")
    return f"answered after the client's FIN; {then}"


def _check_slow_sender(ctx: CheckContext) -> str:
    request = search("morpheus")
    raw = request.encode()
    slow = ctx.connect("slow sender")
    step, pause = 8, 0.04
    chunks = [raw[i : i + step] for i in range(0, len(raw), step)]
    slow.send_chunks(chunks[:3], pause)
    other = search("ring")
    try:
        exchange(ctx, [other], label="a second client while the slow one is mid-request", read_bound=2.0)
    except CheckFailed as failure:
        raise CheckFailed(failure.detail, "unsafe") from None
    slow.send_chunks(chunks[3:], pause)
    bound = ctx.bound(3.0)
    verify_answers(slow.read_messages(1, bound), [request], "slow sender", bound)
    slow.close()
    return f"{len(chunks)} sends {int(pause * 1000)} ms apart answered; another client served meanwhile"


def _check_never_reads(ctx: CheckContext) -> str:
    request = search("needle")
    block = request.encode() * 1000
    limit = 32 << 20
    reader = ctx.connect("client that never reads")
    sent = 0
    blocked = closed = False
    started = time.monotonic()
    while sent < limit and time.monotonic() - started < ctx.bound(1.5):
        try:
            if not reader.send(block, timeout=ctx.bound(0.3)):
                closed = True
                break
        except CheckTimeout:
            if reader.deadline_left(None) <= 0:
                raise
            blocked = True
            break
        sent += len(block)
    try:
        exchange(ctx, [search("morpheus")], label="another client", read_bound=2.0)
        reader.abort()
        still_served(ctx, "a fresh connection after the non-reader left", "after the non-reader left")
    except CheckFailed as failure:
        raise CheckFailed(
            f"with a client that sent {sent >> 10} KiB and never read: {failure.detail}", "unsafe"
        ) from None
    if blocked:
        how = "until the server stopped reading it (backpressure)"
    elif closed:
        how = "until the server closed the connection"
    else:
        how = "without being stopped"
    return f"a client that never reads sent {sent >> 10} KiB of requests {how}; others still served"


def _check_huge_length(ctx: CheckContext) -> str:
    length = 1 << 40
    header = {
        "byteorder": _BYTEORDER,
        "content-type": "binary/custom-client-binary-type",
        "content-encoding": "binary",
        "content-length": length,
    }
    conn = ctx.connect("huge declared length")
    conn.send(frame(json.dumps(header).encode()))
    bound = ctx.bound(2.0)
    reading = conn.read_until_close(bound)
    if reading.end is End.TIMEOUT and not reading.messages:
        raise CheckFailed(
            f"declared content-length 2**40 (1 TiB), sent no content: silence for {bound:.1f}s "
            "(the server waits for the content instead of refusing it)",
            "unsafe",
        )
    still_served(ctx, "a fresh connection", "after a huge declared length")
    return f"content-length 2**40 refused at once: {_outcome(reading)}"


# -- violations ------------------------------------------------------------------------


def _outcome(reading: Reading) -> str:
    said = ""
    if reading.messages:
        first = reading.messages[0]
        try:
            body = first.json()
        except Exception:
            body = None
        if isinstance(body, dict) and "error" in body:
            said = f"error message {body['error']!r}"
        else:
            said = f"a {first.header.get('content-type')} message"
    if reading.end is End.COMPLETE:  # not waited on: the connection may stay open
        return said
    closed = {
        End.EOF: "close",
        End.RESET: "reset",
        End.TIMEOUT: "connection left open",
        End.MALFORMED: f"malformed bytes ({reading.error})",
    }[reading.end]
    return f"{said}, then {closed}" if said else closed


def _misbehaviour(ctx: CheckContext, data: bytes, what: str, *, half_close: bool, must_close: bool) -> str:
    """Send ``data`` on one connection while a bystander is mid-request on another.

    The offender must get an error message or a clean close (never silence);
    the bystander then completes its request and a fresh connection is answered.
    """
    bystander_request = search("\U0001f436")
    raw = bystander_request.encode()
    bystander = ctx.connect("bystander")
    # Cut inside the content: the bystander tests isolation between connections, not splitting.
    cut = (_header_end(raw) + len(raw)) // 2
    bystander.send(raw[:cut])
    offender = ctx.connect("offender")
    offender.send(data)
    if half_close:
        offender.shutdown_write()
    bound = ctx.bound(2.0)
    reading = offender.read_messages(1, bound)
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"{what}: no error message and no close for {bound:.1f}s (server hangs)", "unsafe")
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"{what}: the server answered with bytes that break the protocol: {reading.error}")
    if reading.end is End.COMPLETE and must_close:
        rest = offender.read_until_close(ctx.bound(1.0))
        reading = Reading(reading.frames + rest.frames, rest.end, rest.error)
        if rest.end in (End.TIMEOUT, End.COMPLETE):
            raise CheckFailed(
                f"{what}: {_outcome(reading)}; after a protocol error the connection is closed "
                "(docs/PROTOCOL.md#s2)"
            )
    try:
        bystander.send(raw[cut:])
        bystander_bound = ctx.bound(2.0)
        verify_answers(
            bystander.read_messages(1, bystander_bound), [bystander_request], "bystander", bystander_bound
        )
    except CheckFailed as failure:
        detail = f"{what}: then a bystander mid-request was hurt: {failure.detail}"
        try:
            still_served(ctx, "a fresh connection", "and")
        except CheckFailed as fresh:
            detail += f"; {fresh.detail}"
        raise CheckFailed(detail, "unsafe") from None
    still_served(ctx, "a fresh connection", f"{what}: then")
    return f"{_outcome(reading)}; others unaffected"


def _violation_check(row: Violation) -> Callable[[CheckContext], str]:
    """Send the row's canonical example: a stream error must end in an error message or a close (S2);
    after a content error the server may answer and keep the connection (S3)."""
    example = row.example

    def run(ctx: CheckContext) -> str:
        return _misbehaviour(
            ctx,
            example.data,
            example.description,
            half_close=row.at_end_of_stream,
            must_close=row.closes_connection,
        )

    return run


# -- the list ----------------------------------------------------------------------------


def _build() -> list[Check]:
    checks = [
        Check(
            "search-morpheus",
            "search 'morpheus' gets the guide's answer",
            3,
            _answer_check(search("morpheus")),
            "answers",
            rule="A1",
        ),
        Check(
            "search-ring",
            "search 'ring' gets the guide's answer",
            3,
            _answer_check(search("ring")),
            "answers",
            rule="A1",
        ),
        Check(
            "search-dog",
            "search '\U0001f436' (non-ASCII) gets the guide's answer",
            3,
            _answer_check(search("\U0001f436")),
            "answers",
            rule="A1",
        ),
        Check(
            "search-miss",
            "search 'needle' gets \"No match for 'needle'.\"",
            3,
            _answer_check(search("needle")),
            "answers",
            rule="A1",
        ),
        Check(
            "binary",
            "a binary request gets its first 10 bytes back",
            3,
            _answer_check(binary("binary\U0001f603".encode())),
            "answers",
            rule="A3",
        ),
        Check(
            "invalid-action",
            "action 'fetch' gets the invalid-action answer",
            3,
            _answer_check(Message.from_json({"action": "fetch", "value": "morpheus"}, byteorder=_BYTEORDER)),
            "answers",
            rule="A2",
        ),
        Check(
            "split-one-byte", "a request sent one byte per send", 5, _check_one_byte, "splitting", rule="F2"
        ),
        Check(
            "split-prefix",
            "a request split inside the 2-byte prefix",
            3,
            _split_at(lambda raw: 1, "inside the prefix"),
            "splitting",
            rule="F2",
        ),
        Check(
            "split-header",
            "a request split inside the JSON header",
            3,
            _split_at(lambda raw: (2 + _header_end(raw)) // 2, "inside the header"),
            "splitting",
            rule="F2",
        ),
        Check(
            "split-content",
            "a request split inside the content",
            3,
            _split_at(lambda raw: (_header_end(raw) + len(raw)) // 2, "inside the content"),
            "splitting",
            rule="F2",
        ),
        Check(
            "split-random",
            "20 requests cut at seeded random positions",
            10,
            _check_random_splittings,
            "splitting",
            rule="F2",
        ),
        Check(
            "pipeline-2",
            "2 requests in one send, answered in order",
            4,
            _pipeline(2),
            "pipelining",
            rule="F3",
        ),
        Check(
            "pipeline-100",
            "100 requests in one send, answered in order",
            8,
            _pipeline(100),
            "pipelining",
            rule="S1",
        ),
        Check(
            "concurrent-connections",
            "50 connections open at once, each answered",
            8,
            _check_many_connections,
            "concurrency",
            rule="S4",
        ),
        Check(
            "concurrent-interleaved",
            "10 connections sending partial requests round robin",
            8,
            _check_interleaved,
            "concurrency",
            rule="S4",
        ),
        Check(
            "half-close",
            "a request followed by the client's FIN is still answered",
            5,
            _check_half_close,
            "connection",
            rule="S5",
        ),
        Check(
            "slow-sender",
            "a request trickling in is answered; others are served meanwhile",
            8,
            _check_slow_sender,
            "connection",
            rule="S4",
        ),
        Check(
            "never-reads",
            "a client that never reads does not stop others being served",
            10,
            _check_never_reads,
            "connection",
            rule="L3",
        ),
        Check(
            "huge-length",
            "content-length 2**40 is refused without waiting for the content",
            6,
            _check_huge_length,
            "limits",
            rule="L1",
        ),
    ]
    for row in VIOLATIONS.values():
        what = row.example.description
        verdict = "error message or close" if row.closes_connection else "an answer or a close"
        checks.append(
            Check(
                f"violation-{row.code}",
                f"{what}: {verdict}; others unaffected",
                8,
                _violation_check(row),
                "violations",
                rule=row.rule,
            )
        )
    return checks


#: Every check, in the order the probe runs them.
CHECKS: list[Check] = _build()


def check_names() -> list[str]:
    return [check.name for check in CHECKS]


def find_check(name: str) -> Check:
    for check in CHECKS:
        if check.name == name:
            return check
    raise KeyError(name)
