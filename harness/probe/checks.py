"""The probe's named checks of the lpjson protocol.

Each check talks to the target over fresh, recorded connections
(:class:`~harness.probe.wire.Recorder`), and either returns a one-line detail
(pass) or raises :class:`CheckFailed` saying what went wrong and how bad it is:

- ``spec``: the server deviates from docs/PROTOCOL.md (a wrong answer, a request
  dropped, a connection closed too early);
- ``unsafe``: the server hangs (silence until the time bound), dies (a fresh
  connection is refused or unanswered) or stops serving others.

Every check names the rule of docs/PROTOCOL.md it tests (``rule``, an id of
:data:`harness.spec.RULES`), a one-line ``hint`` that says what to fix, and the
checks it ``depends`` on: a failure that follows from a dependency's failure is
reported as a consequence of it (:mod:`harness.probe.runner`). Expected answers
always come from the application (:class:`harness.apps.App`, the search
application by default): a request the application cannot read is expected to
get the error message of its :class:`~harness.errors.ContentError`. The
violation checks send the canonical example of each row of
:data:`harness.violations.VIOLATIONS`, one check per error code, each judged by
the row's rule. How a profile (:mod:`harness.probe.profiles`) relaxes a verdict
is written where the verdict is made, and listed in ``Check.relaxed_by``.
"""

from __future__ import annotations

import base64
import codecs
import itertools
import json
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.apps import App, search_app
from harness.errors import ContentError, UnsupportedEncoding
from harness.frames import frame
from harness.message import REQUIRED_KEYS, Message
from harness.probe.profiles import RELAXATIONS, STRICT, Profile
from harness.probe.wire import CheckTimeout, End, Reading, Recorder, WireConnection
from harness.spec import RULES, SPEC_PATH
from harness.violations import VIOLATIONS, Violation

__all__ = [
    "CHECKS",
    "UNCHECKED_RULES",
    "Check",
    "CheckContext",
    "CheckFailed",
    "Outcome",
    "Severity",
    "check_names",
    "expected_answer",
    "find_check",
    "lpjson_checks",
    "random_splittings",
]

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

#: Rules of docs/PROTOCOL.md that no probe check judges, and why (tests hold this list exact).
UNCHECKED_RULES: dict[str, str] = {
    "L2": "the idle timeout's length is the server's choice (the reference waits 30 s): a probe "
    "bounded to seconds cannot tell a server without one from a server with a long one",
    "E1": "an encoder rule: a server's header need not equal the guide's byte for byte; answers are "
    "compared by header values",
    "E2": "an encoder rule: a server's JSON content need not equal the guide's byte for byte; answers "
    "are compared as decoded JSON values",
}


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


# -- requests and their expected answers ------------------------------------------


def search(value: str, *, encoding: str = "utf-8", extra: dict[str, Any] | None = None) -> Message:
    return Message.from_json(
        {"action": "search", "value": value}, byteorder=_BYTEORDER, encoding=encoding, extra_headers=extra
    )


def binary(content: bytes) -> Message:
    return Message.from_bytes(content, byteorder=_BYTEORDER)


def expected_answer(request: Message, app: App | None = None) -> Message:
    """The application's answer to ``request`` (the search application by default)."""
    return (app if app is not None else search_app)(request)


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


def describe_request(request: Message) -> str:
    if request.is_json:
        try:
            body = request.json()
        except ContentError:
            return f"text/json in {request.header['content-encoding']!r} ({request.content[:24]!r})"
        return f"{body.get('action')} {body.get('value')!r}" if isinstance(body, dict) else "text/json"
    return f"binary {request.content[:16]!r}"


def error_code(message: Message) -> str | None:
    """The ``"error"`` of an error message (docs/PROTOCOL.md#s6), None for an ordinary answer."""
    if not message.is_json:
        return None
    try:
        body = message.json()
    except Exception:  # a ContentError, or anything a broken answer raises
        return None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None


_UNREADABLE = object()


def difference(got: Message, want: Message) -> str | None:
    """Why ``got`` is not the answer ``want`` (None when it is).

    Every header value of ``want`` is compared except ``byteorder`` (informational:
    the sender's machine) and ``content-length`` (the content is compared);
    ``text/json`` contents are compared as decoded JSON values, other contents byte
    for byte.
    """
    for key in ("content-type", "content-encoding"):
        if got.header.get(key) != want.header[key]:
            return f"{key} {got.header.get(key)!r}, expected {want.header[key]!r}"
    for key, value in want.header.items():
        if key not in REQUIRED_KEYS and got.header.get(key) != value:
            return f"header {key!r} is {_short(got.header.get(key))}, expected {_short(value)}"
    wanted: Any = _UNREADABLE
    if want.is_json:
        try:
            wanted = want.json()
        except ContentError:  # an answer whose content is not readable (echo): compared as bytes
            wanted = _UNREADABLE
    if wanted is not _UNREADABLE:
        try:
            value = got.json()
        except Exception as exc:  # a ContentError, or anything a broken answer raises
            return f"content is not readable JSON ({exc})"
        if value != wanted:
            return f"content {_short(value)}, expected {_short(wanted)}"
        return None
    if got.content != want.content:
        return f"content {got.content[:60]!r}, expected {want.content[:60]!r}"
    return None


def _mismatch(got: Message, want: Outcome) -> str | None:
    """Why ``got`` is not the outcome ``want`` (an answer, or the error message of a content error)."""
    if isinstance(want, Message):
        return difference(got, want)
    code = error_code(got)
    if code == want.code:
        return None
    shown = f"the error message {code!r}" if code is not None else f"an answer ({_describe_answer(got)})"
    return f"{shown}, expected the error message {want.code!r} (docs/PROTOCOL.md#s3)"


def _describe_answer(message: Message) -> str:
    if message.is_json:
        try:
            return _short(message.json())
        except Exception:
            return "unreadable text/json"
    return repr(message.content[:40])


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 80 else text[:77] + "..."


def verify_answers(
    reading: Reading,
    requests: Sequence[Message],
    what: str,
    bound: float,
    ctx: CheckContext | None = None,
) -> str:
    """Raise :class:`CheckFailed` unless ``reading`` holds the answers to ``requests``, in order.

    ``what`` names the connection in the detail (nothing when empty). With ``ctx``, the
    answers are the application's and the profile's relaxations apply: a close after the
    first answer (one request per connection), a close instead of a content error's
    error message.
    """
    profile = ctx.profile if ctx is not None else STRICT
    what = f"{what}: " if what else ""
    for index, (got, request) in enumerate(zip(reading.messages, requests, strict=False)):
        accepted = ctx.outcomes(request) if ctx is not None else [expected_answer(request)]
        problems = [_mismatch(got, want) for want in accepted]
        if all(problem is not None for problem in problems):
            ordinal = f" #{index + 1}" if len(requests) > 1 else ""
            raise CheckFailed(
                f"{what}answer{ordinal} to {describe_request(request)}: {problems[0]}", wrong_answer=True
            )
    count = len(reading.messages)
    if count < len(requests):
        where = f"{count} of {len(requests)} answers"
        if reading.end is End.TIMEOUT:
            raise CheckFailed(f"{what}{where}, then silence for {bound:.1f}s (server hangs)", "unsafe")
        if reading.end is End.MALFORMED:
            raise CheckFailed(f"{what}{where}, then bytes that break the protocol: {reading.error}")
        closed = "closed the connection" if reading.end is End.EOF else "reset the connection"
        if ctx is not None and profile.one_request_per_connection and count >= 1:
            ctx.note("closes after one answer")
            return f"closes after one answer: {where}, then the server {closed}"
        if ctx is not None and profile.errors_may_close:
            pending = ctx.outcomes(requests[count])[0]
            if isinstance(pending, ContentError):
                ctx.note("closes on an error")
                return f"{where}, then the server {closed} at the {pending.code} request"
        raise CheckFailed(f"{what}{where}, then the server {closed}")
    return f"{len(requests)} answer(s) correct"


def exchange(
    ctx: CheckContext,
    requests: Sequence[Message],
    chunks: Sequence[bytes] | None = None,
    *,
    pause: float = 0.0,
    read_bound: float = 2.0,
    label: str = "",
    data: bytes | None = None,
) -> str:
    """Send ``requests`` (as ``chunks`` if given) on a fresh connection and check the answers."""
    conn = ctx.connect(label)
    if data is None:
        data = b"".join(r.encode() for r in requests)
    if chunks is None:
        chunks = [data]
    assert b"".join(chunks) == data, "chunks must cover the requests exactly"
    # A send that breaks (the server closed or reset) still leaves the answers it sent
    # before that to be read, so the verdict comes from reading either way.
    conn.send_chunks(chunks, pause)
    bound = ctx.bound(read_bound)
    reading = conn.read_messages(len(requests), bound)
    detail = verify_answers(reading, requests, label, bound, ctx)
    conn.close()
    return detail


def still_served(ctx: CheckContext, label: str, why: str) -> None:
    """A fresh connection gets an answer, or the check fails as unsafe (whether the answer is
    right is for the answer checks to say)."""
    request = search("morpheus")
    try:
        conn = ctx.connect(label)
        conn.send(request.encode())
        bound = ctx.bound(2.0)
        reading = conn.read_messages(1, bound)
        if not reading.messages:
            verify_answers(reading, [request], label, bound)
        conn.close()
    except CheckFailed as failure:
        raise CheckFailed(f"{why}: {failure.detail}", "unsafe") from None


# -- answers -------------------------------------------------------------------------


def _answer_check(request: Message) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        detail = exchange(ctx, [request])
        want = ctx.outcomes(request)[0]
        if isinstance(want, ContentError):
            return f"answered with the error message {want.code!r}"
        if detail.startswith("1 answer"):
            return f"answered {_describe_answer(want)}"
        return detail

    return run


# -- splitting -----------------------------------------------------------------------


def _header_end(raw: bytes) -> int:
    return 2 + int.from_bytes(raw[:2], "big")


def _check_one_byte(ctx: CheckContext) -> str:
    request = search("morpheus")
    raw = request.encode()
    exchange(ctx, [request], [raw[i : i + 1] for i in range(len(raw))], pause=0.0005)
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
        exchange(ctx, [request], chunks, pause=0.001, label=label)
        count += 1
    return f"{count} seeded splittings answered (seed {ctx.seed})"


# -- pipelining ----------------------------------------------------------------------


def _pipeline(count: int) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        pool = _split_requests()
        requests = [pool[i % len(pool)] if i % 3 else search(f"needle-{i}") for i in range(count)]
        detail = exchange(ctx, requests, read_bound=2.0 + count * 0.02)
        if ctx.notes:
            return detail
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
        verify_answers(conn.read_messages(1, bound), [request], f"connection {i + 1} of {count}", bound, ctx)
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
        verify_answers(conn.read_messages(1, bound), [request], f"connection {i + 1} of {count}", bound, ctx)
    return f"{count} connections sending {pieces} pieces each, round robin, all answered"


# -- connection life -------------------------------------------------------------------


def _check_half_close(ctx: CheckContext) -> str:
    request = search("morpheus")
    conn = ctx.connect()
    conn.send_then_shutdown(request.encode())
    bound = ctx.bound(3.0)
    verify_answers(conn.read_messages(1, bound), [request], "after half-close", bound, ctx)
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
    step, pause = 16, 0.025
    chunks = [raw[i : i + step] for i in range(0, len(raw), step)]
    slow.send_chunks(chunks[:3], pause)
    other = search("ring")
    try:
        exchange(ctx, [other], label="a second client while the slow one is mid-request", read_bound=2.0)
    except CheckFailed as failure:
        raise failure.unsafe_unless_wrong_answer(failure.detail) from None
    slow.send_chunks(chunks[3:], pause)
    bound = ctx.bound(3.0)
    verify_answers(slow.read_messages(1, bound), [request], "slow sender", bound, ctx)
    slow.close()
    return f"{len(chunks)} sends {int(pause * 1000)} ms apart answered; another client served meanwhile"


def _check_never_reads(ctx: CheckContext) -> str:
    return _never_reads(ctx, limit=32 << 20, seconds=1.5)


#: The receive buffer of the small-window non-reader: its answers back up in the server at once.
SMALL_RCVBUF = 16 << 10


def _check_never_reads_small_window(ctx: CheckContext) -> str:
    # A server without backpressure may stall for a second while it answers its backlog
    # before it only reads: a send blocked that long is not yet backpressure.
    if not ctx.monitored:
        detail = _never_reads(ctx, limit=32 << 20, seconds=1.0, rcvbuf=SMALL_RCVBUF)
        return f"{detail} (memory not measured: no process monitor)"
    return _never_reads(ctx, limit=96 << 20, seconds=8.0, rcvbuf=SMALL_RCVBUF, blocked_after=1.0)


def _never_reads(
    ctx: CheckContext, *, limit: int, seconds: float, rcvbuf: int | None = None, blocked_after: float = 0.2
) -> str:
    """A client sends requests for up to ``seconds`` (or ``limit`` bytes) and reads nothing;
    others must still be served. With a small ``rcvbuf`` the kernel holds almost none of
    the answers, so a server without backpressure holds them all: its memory grows at the
    rate it answers, which the process monitor's RSS bound sees."""
    request = search("needle")
    block = request.encode() * 1000
    label = "client that never reads" + (f" (SO_RCVBUF {rcvbuf >> 10} KiB)" if rcvbuf else "")
    reader = ctx.connect(label, rcvbuf=rcvbuf)
    sent = 0
    blocked = closed = False
    started = time.monotonic()
    while sent < limit and time.monotonic() - started < ctx.bound(seconds):
        try:
            if not reader.send(block, timeout=ctx.bound(blocked_after)):
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
        raise failure.unsafe_unless_wrong_answer(
            f"with a client that sent {sent >> 10} KiB and never read: {failure.detail}"
        ) from None
    if blocked:
        how = "until the server stopped reading it (backpressure)"
    elif closed:
        how = "until the server closed the connection"
    else:
        how = "without being stopped"
    who = "a client that never reads" + (f" (receive buffer {rcvbuf >> 10} KiB)" if rcvbuf else "")
    return f"{who} sent {sent >> 10} KiB of requests {how}; others still served"


#: The content of each request of the many-large-requests check: under the spec's default limit.
_LARGE_CONTENT = 1000 << 10
_LARGE_COUNT = 96


def _check_many_large_requests(ctx: CheckContext) -> str:
    """96 binary requests of 1000 KiB (94 MiB in all), each on a connection of its own:
    a server that keeps what it read (a log of requests, a buffer never trimmed) grows by
    all of it, which the process monitor's RSS bound sees; one that forgets a request once
    answered stays flat."""
    request = binary(bytes(range(256)) * (_LARGE_CONTENT // 256))
    raw = request.encode()
    answered = 0
    count = _LARGE_COUNT if ctx.monitored else 4
    for index in range(count):
        # (a connection each: pipelining and one request per connection are other checks' matter)
        label = f"large request {index + 1} of {count}"
        conn = ctx.connect(label)
        conn.send(raw)
        bound = ctx.bound(3.0)
        reading = conn.read_messages(1, bound)
        if reading.messages and error_code(reading.messages[0]) == "content-too-large":
            conn.close()
            ctx.note("limit under 1000 KiB")
            return f"requests of {_LARGE_CONTENT >> 10} KiB refused (content-too-large): a smaller limit"
        verify_answers(reading, [request], label, bound, ctx)
        answered += 1
        conn.close()
    detail = f"{answered} requests of {_LARGE_CONTENT >> 10} KiB ({answered * len(raw) >> 20} MiB) answered"
    return detail if ctx.monitored else f"{detail} (memory not measured: no process monitor)"


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
        code = error_code(first)
        if code is not None:
            said = f"error message {code!r}"
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


@dataclass(frozen=True)
class _Offence:
    """What a misbehaving client sends, and what the server may answer to it.

    ``code``: the violation, named in an error message if the server sends one.
    ``request``: for a well-framed message whose content is bad (a content error), the
    message itself, so that its expected outcomes come from the application.
    ``answer_ok``: a profile flag under which the server may also read it as a request and
    answer it (the guide's lax reader).
    """

    data: bytes
    what: str
    code: str
    half_close: bool = False
    must_close: bool = True
    request: Message | None = None
    answer_ok: str | None = None


def _judge_offender(ctx: CheckContext, offender: WireConnection, offence: _Offence) -> Reading:
    """The offender's verdict (raises :class:`CheckFailed`); returns what it read."""
    what = offence.what
    bound = ctx.bound(2.0)
    reading = offender.read_messages(1, bound)
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"{what}: no error message and no close for {bound:.1f}s (server hangs)", "unsafe")
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"{what}: the server answered with bytes that break the protocol: {reading.error}")
    if offence.request is not None:  # a content error: judged like an answer (S3)
        if reading.messages:
            verify_answers(reading, [offence.request], "", bound, ctx)
            return reading
        want = ctx.outcomes(offence.request)[0]
        closed = "closed" if reading.end is End.EOF else "reset"
        if isinstance(want, ContentError):
            if ctx.profile.errors_may_close:
                ctx.note("closes on an error")
                return reading
            raise CheckFailed(
                f"{what}: the server {closed} the connection instead of answering with the error message "
                f"{want.code!r} (docs/PROTOCOL.md#s3: the stream is still in sync, the connection stays open)"
            )
        raise CheckFailed(f"{what}: the server {closed} the connection instead of answering it")
    if reading.messages:
        first = reading.messages[0]
        code = error_code(first)
        if code is None:
            if offence.answer_ok is not None and ctx.profile.relaxes(offence.answer_ok):
                ctx.note("reads it as a request")
                return reading
            raise CheckFailed(
                f"{what}: answered it as a request ({_describe_answer(first)}); expected the error "
                f"message {offence.code!r} or a close"
            )
        if code != offence.code:
            raise CheckFailed(f"{what}: the error message names {code!r}, expected {offence.code!r}")
    if reading.end is End.COMPLETE and offence.must_close and error_code(reading.messages[0]) is not None:
        rest = offender.read_until_close(ctx.bound(1.0))
        reading = Reading(reading.frames + rest.frames, rest.end, rest.error)
        if rest.end in (End.TIMEOUT, End.COMPLETE):
            raise CheckFailed(
                f"{what}: {_outcome(reading)}; after a protocol error the connection is closed "
                "(docs/PROTOCOL.md#s2)"
            )
    return reading


def _misbehaviour(ctx: CheckContext, offence: _Offence) -> str:
    """Send the offence on one connection while a bystander is mid-request on another.

    The offender must get what :func:`_judge_offender` accepts (never silence); the
    bystander then completes its request and a fresh connection is answered.
    """
    bystander_request = search("\U0001f436")
    raw = bystander_request.encode()
    bystander = ctx.connect("bystander")
    # Cut inside the content: the bystander tests isolation between connections, not splitting.
    cut = (_header_end(raw) + len(raw)) // 2
    bystander.send(raw[:cut])
    offender = ctx.connect("offender")
    offender.send(offence.data)
    if offence.half_close:
        offender.shutdown_write()
    reading = _judge_offender(ctx, offender, offence)
    try:
        bystander.send(raw[cut:])
        bystander_bound = ctx.bound(2.0)
        verify_answers(
            bystander.read_messages(1, bystander_bound),
            [bystander_request],
            "bystander",
            bystander_bound,
            ctx,
        )
    except CheckFailed as failure:
        if failure.wrong_answer:
            raise CheckFailed(
                f"{offence.what}: then a bystander: {failure.detail}", wrong_answer=True
            ) from None
        detail = f"{offence.what}: then a bystander mid-request was hurt: {failure.detail}"
        try:
            still_served(ctx, "a fresh connection", "and")
        except CheckFailed as fresh:
            detail += f"; {fresh.detail}"
        raise CheckFailed(detail, "unsafe") from None
    still_served(ctx, "a fresh connection", f"{offence.what}: then")
    return f"{_outcome(reading)}; others unaffected"


#: The morpheus request the guide's client sends, used as the body of crafted headers.
_MORPHEUS_CONTENT = b'{"action": "search", "value": "morpheus"}'
_MORPHEUS_HEADER = (
    '{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", "content-length": 41'
)

#: What a lax JSON reader (json.loads) takes for a valid request: the guide profile sends these
#: instead of the canonical examples, which a lax reader legitimately reads otherwise (a repeated
#: content-length: the last wins, and the server waits for that many bytes).
_LAX_JSON_EXAMPLES: dict[str, tuple[bytes, str]] = {
    "non-finite-number": (
        frame((_MORPHEUS_HEADER + ', "x-priority": NaN}').encode(), _MORPHEUS_CONTENT),
        "a search whose JSON header holds NaN in an extension key",
    ),
    "duplicate-key": (
        frame((_MORPHEUS_HEADER + ', "x-trace": 1, "x-trace": 2}').encode(), _MORPHEUS_CONTENT),
        "a search whose JSON header repeats an extension key",
    ),
}

#: The profile flag under which each violation may be read as a request and answered.
_ANSWER_OK = {
    "non-finite-number": "lax_json",
    "duplicate-key": "lax_json",
    "invalid-header-value": "lax_header_values",
}

#: One line per error code: what to fix when its check fails.
_VIOLATION_HINTS: dict[str, str] = {
    "zero-header-length": "refuse a header length of 0 (zero-header-length) and close: an empty header "
    "is not a JSON object",
    "header-not-utf8": "decode the JSON header as strict UTF-8 and refuse it (header-not-utf8, then "
    "close) when that fails, instead of crashing",
    "header-not-json": "catch the JSON error on the header, refuse it (header-not-json) and close that "
    "connection only",
    "non-finite-number": "read the header with a parse_constant that raises: NaN and Infinity are not "
    "JSON (non-finite-number)",
    "duplicate-key": "read the header with an object_pairs_hook that refuses repeated keys "
    "(duplicate-key): readers disagree on which one wins",
    "header-not-object": "check that the parsed header is a dict before looking keys up (header-not-object)",
    "missing-header-key": "check that byteorder, content-type, content-encoding and content-length are "
    "all there (missing-header-key), then close",
    "invalid-header-value": "check each required value's type and range (content-length: an int, not a "
    "bool, >= 0) and refuse a bad one (invalid-header-value)",
    "content-too-large": "compare content-length with a limit as soon as the header is parsed and refuse "
    "it (content-too-large) without waiting for the content",
    "incomplete-message": "on EOF inside a message, send incomplete-message (or close): never wait for "
    "bytes after the peer's FIN",
    "unsupported-encoding": "decode text/json only with utf-8, utf-16, utf-32, ascii or latin-1; answer "
    "any other name with the error message unsupported-encoding",
    "content-not-decodable": "catch UnicodeDecodeError on the content and answer content-not-decodable; "
    "keep the connection open",
    "content-not-json": "catch the JSON error on the content and answer content-not-json; keep the "
    "connection open",
}


def _violation_offence(row: Violation, profile: Profile) -> _Offence:
    data, what = row.example.data, row.example.description
    if profile.lax_json and row.code in _LAX_JSON_EXAMPLES:
        data, what = _LAX_JSON_EXAMPLES[row.code]
    return _Offence(
        data,
        what,
        row.code,
        half_close=row.at_end_of_stream,
        must_close=row.closes_connection,
        request=row.example.message if row.is_content else None,
        answer_ok=_ANSWER_OK.get(row.code),
    )


def _violation_check(row: Violation) -> Callable[[CheckContext], str]:
    """Send the row's canonical example: a stream error must end in an error message naming it or
    a close (S2); a content error gets the application's outcome, an error message (S3)."""

    def run(ctx: CheckContext) -> str:
        return _misbehaviour(ctx, _violation_offence(row, ctx.profile))

    return run


# -- header values (H7) -----------------------------------------------------------------


#: Every kind of invalid value of each required key: (check name suffix, value).
_BAD_VALUES: dict[str, list[tuple[str, Any]]] = {
    "byteorder": [("middle", "middle"), ("upper-case", "LITTLE"), ("number", 1), ("null", None)],
    "content-type": [("empty", ""), ("number", 7), ("null", None)],
    "content-encoding": [("empty", ""), ("number", 0), ("list", ["utf-8"])],
    "content-length": [
        ("negative", -1),
        ("float", 41.0),
        ("bool", True),
        ("string", "41"),
        ("null", None),
    ],
}


def header_value_offence(key: str, value: Any) -> _Offence:
    """A search request whose header sets ``key`` to the invalid ``value`` (the content follows
    whole, so that a lax reader has a request to answer)."""
    header: dict[str, Any] = {
        "byteorder": _BYTEORDER,
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": len(_MORPHEUS_CONTENT),
    }
    header[key] = value
    raw = json.dumps(header, ensure_ascii=False).encode()
    return _Offence(
        frame(raw, _MORPHEUS_CONTENT),
        f"the JSON header sets {key} to {json.dumps(value)}",
        "invalid-header-value",
        answer_ok="lax_header_values",
    )


def _header_value_check(key: str, value: Any) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        return _misbehaviour(ctx, header_value_offence(key, value))

    return run


# -- errors: what comes before and after one (F5, S2, S3, S6) ---------------------------


def _check_no_resync(ctx: CheckContext) -> str:
    bad = VIOLATIONS["header-not-json"].example.data
    behind = search("morpheus")
    conn = ctx.connect("bad header, then a request")
    conn.send(bad + behind.encode())
    bound = ctx.bound(2.0)
    reading = conn.read_until_close(bound)
    if reading.end is End.TIMEOUT and not reading.messages:
        raise CheckFailed(
            f"a bad header then a request: no error message and no close for {bound:.1f}s", "unsafe"
        )
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"a bad header then a request: bytes that break the protocol: {reading.error}")
    answers = [m for m in reading.messages if error_code(m) is None]
    if answers:
        raise CheckFailed(
            "a bad header then a request: the request behind the bad header was answered "
            f"({_describe_answer(answers[0])}); after a header error nothing resynchronises the stream"
        )
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"a bad header then a request: {_outcome(reading)}; the connection must close")
    return f"{_outcome(reading)}; the request behind the bad header was not read as one"


def _check_answer_before_error(ctx: CheckContext) -> str:
    first = search("ring")
    bad = VIOLATIONS["header-not-object"].example.data
    what = "a request then a bad header"
    conn = ctx.connect("a request, then a bad header")
    conn.send(first.encode() + bad)
    bound = ctx.bound(3.0)
    reading = conn.read_until_close(bound)
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"{what}: bytes that break the protocol: {reading.error}")
    if not reading.messages:
        if reading.end is End.TIMEOUT:
            raise CheckFailed(f"{what}: silence for {bound:.1f}s (server hangs)", "unsafe")
        raise CheckFailed(
            f"{what}: the server closed without answering the request before the bad header "
            "(docs/PROTOCOL.md#s2: what came before is answered)"
        )
    verify_answers(Reading(reading.frames[:1], End.COMPLETE), [first], what, bound, ctx)
    rest = reading.messages[1:]
    if rest:
        code = error_code(rest[0])
        if code is None:
            raise CheckFailed(
                f"{what}: the bad header was answered as a request ({_describe_answer(rest[0])})"
            )
        if code != "header-not-object":
            raise CheckFailed(f"{what}: the error message names {code!r}, expected 'header-not-object'")
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"{what}: {_outcome(reading)}; after a header error the connection is closed")
    then = f"error message {error_code(rest[0])!r}, then close" if rest else "close"
    return f"the request before the bad header answered; then {then}"


def _check_pipeline_after_bad_content(ctx: CheckContext) -> str:
    row = VIOLATIONS["content-not-json"]
    assert row.example.message is not None
    requests = [row.example.message, search("ring")]
    detail = exchange(ctx, requests, label="bad content, then a request")
    if ctx.notes:
        return detail
    return "the bad content answered with its error message, the request behind it answered"


def _check_error_message_shape(ctx: CheckContext) -> str:
    row = VIOLATIONS["content-not-json"]
    request = row.example.message
    assert request is not None
    conn = ctx.connect("bad content")
    conn.send(request.encode())
    bound = ctx.bound(2.0)
    reading = conn.read_messages(1, bound)
    if reading.end is End.TIMEOUT:
        raise CheckFailed(f"bad content: no answer for {bound:.1f}s (server hangs)", "unsafe")
    if reading.end is End.MALFORMED:
        raise CheckFailed(f"bad content: bytes that break the protocol: {reading.error}")
    if not reading.messages:
        if ctx.profile.errors_may_close:
            ctx.note("closes on an error")
            return "no error message: the server closes on an error (accepted by this profile)"
        raise CheckFailed("bad content: the server closed the connection without an error message")
    want = ctx.outcomes(request)[0]
    if isinstance(want, Message):  # an application that does not read the content (echo)
        verify_answers(reading, [request], "bad content", bound, ctx)
        return "answered as the application answers it (it does not read the content)"
    message = reading.messages[0]
    problems = []
    if message.header.get("content-type") != "text/json":
        problems.append(f"content-type {message.header.get('content-type')!r}")
    try:
        body = message.json()
    except Exception as exc:
        body = None
        problems.append(f"content not readable JSON ({exc})")
    if body is not None:
        if not isinstance(body, dict):
            problems.append(f"content {_short(body)} is not an object")
        else:
            if not isinstance(body.get("error"), str):
                problems.append('no string "error"')
            elif body["error"] != want.code:
                problems.append(f'"error" {body["error"]!r}, expected {want.code!r}')
            if not isinstance(body.get("detail"), str) or not body["detail"]:
                problems.append('no non-empty string "detail"')
    if problems:
        raise CheckFailed(
            'the error message is not text/json {"error": code, "detail": reason}: ' + "; ".join(problems)
        )
    return f"text/json {_short(body)}"


# -- encodings (C2) ---------------------------------------------------------------------

#: A request in each allow-listed encoding, and the value it searches (non-ASCII where it can be).
_ENCODED_SEARCHES: list[tuple[str, str, str]] = [
    ("utf-8", "utf-8", "\U0001f436"),
    ("utf-16", "utf-16", "\U0001f436"),
    ("utf-32", "utf-32", "ring"),
    ("ascii", "ascii", "morpheus"),
    ("latin-1", "latin-1", "caf\u00e9"),
    ("upper-case-name", "UTF-16", "morpheus"),
]

#: Codec names outside the allow-list, Python's own among them, and the content sent under each:
#: the search written in that codec where it is a text codec, so that a server that runs the
#: named codec answers it instead of refusing it.
_FOREIGN_CODECS: list[tuple[str, str, bytes]] = [
    ("utf-7", "utf-7", _MORPHEUS_CONTENT.decode().encode("utf-7")),
    ("cp500", "cp500", _MORPHEUS_CONTENT.decode().encode("cp500")),
    ("utf8-alias", "utf8", _MORPHEUS_CONTENT),
    ("base64", "base64", base64.b64encode(_MORPHEUS_CONTENT)),
    ("unknown", "x-probe-unknown", _MORPHEUS_CONTENT),
]


def _foreign_codec_check(encoding: str, content: bytes) -> Callable[[CheckContext], str]:
    request = Message.from_bytes(content, content_type="text/json", encoding=encoding, byteorder=_BYTEORDER)

    def run(ctx: CheckContext) -> str:
        offence = _Offence(
            request.encode(),
            f"text/json content in the encoding {encoding!r}",
            "unsupported-encoding",
            must_close=False,
            request=request,
        )
        return _misbehaviour(ctx, offence)

    return run


# -- the list ----------------------------------------------------------------------------

_SPLITS = ("split-prefix", "split-header", "split-content")


def _answer_rule(app_name: str, search_rule: str) -> str:
    """The rule an answer check tests: the search application's, or echo's A4."""
    return {"search": search_rule, "echo": "A4"}.get(app_name, "S1")


def lpjson_checks(app: App | str = "search") -> list[Check]:
    """Every check of the lpjson protocol, in the order the probe runs them, for the application
    ``app`` (its name decides which rule the answer checks cite: A1-A3 for search, A4 for echo)."""
    app_name = app if isinstance(app, str) else app.name
    echo = app_name == "echo"

    def answers(rule: str) -> str:
        return _answer_rule(app_name, rule)

    answer_hint = (
        "answer every request with itself: the same header values and content"
        if echo
        else 'answer {"action": "search"} with {"result": ...} from the guide\'s table (docs/PROTOCOL.md#a1)'
    )
    basic = ("search-morpheus",)
    checks = [
        Check(
            "search-morpheus",
            "search 'morpheus' gets the application's answer",
            3,
            _answer_check(search("morpheus")),
            "answers",
            answers("A1"),
            hint=answer_hint,
        ),
        Check(
            "search-ring",
            "search 'ring' gets the application's answer",
            3,
            _answer_check(search("ring")),
            "answers",
            answers("A1"),
            hint=answer_hint,
            depends=basic,
        ),
        Check(
            "search-dog",
            "search '\U0001f436' (non-ASCII) gets the application's answer",
            3,
            _answer_check(search("\U0001f436")),
            "answers",
            answers("A1"),
            hint="decode the content as UTF-8 text and compare strings, not bytes with escapes",
            depends=basic,
        ),
        Check(
            "search-miss",
            "search 'needle' gets \"No match for 'needle'.\"" if not echo else "search 'needle' is echoed",
            3,
            _answer_check(search("needle")),
            "answers",
            answers("A1"),
            hint=answer_hint,
            depends=basic,
        ),
        Check(
            "search-no-value",
            'search without a "value" gets "No match for \'None\'."'
            if not echo
            else 'search without a "value" is echoed',
            3,
            _answer_check(Message.from_json({"action": "search"}, byteorder=_BYTEORDER)),
            "answers",
            answers("A1"),
            hint='a search without "value" has the value None: answer "No match for \'None\'." '
            "(docs/PROTOCOL.md#a1), never let a missing key raise"
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "binary",
            "a binary request gets its first 10 bytes back" if not echo else "a binary request is echoed",
            3,
            _answer_check(binary("binary\U0001f603".encode())),
            "answers",
            answers("A3"),
            hint="answer another content-type with b'First 10 bytes of request: ' + content[:10]"
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "invalid-action",
            "action 'fetch' gets the invalid-action answer" if not echo else "action 'fetch' is echoed",
            3,
            _answer_check(Message.from_json({"action": "fetch", "value": "morpheus"}, byteorder=_BYTEORDER)),
            "answers",
            answers("A2"),
            hint='answer an action other than search with {"result": "Error: invalid action \'<action>\'."}'
            if not echo
            else answer_hint,
            depends=basic,
        ),
        Check(
            "binary-not-utf8",
            "binary content that is not UTF-8 is answered, its bytes intact",
            3,
            _answer_check(binary(b"\xff\xfe\x00\x80\xc3(\xed\xa0\x80\xf8tail")),
            "answers",
            "C5",
            hint="pass binary content on as bytes: never decode it, it need not be text",
            depends=basic,
        ),
        Check(
            "empty-content",
            "a binary request with content-length 0 is answered",
            3,
            _answer_check(binary(b"")),
            "answers",
            "C1",
            hint="a content-length of 0 is a whole message: answer it without waiting for content",
            depends=basic,
        ),
        Check(
            "extension-header",
            "a request with extension header keys is answered" + (" (and they come back)" if echo else ""),
            3,
            _answer_check(search("ring", extra={"x-request-id": "probe-7", "x-route": {"via": ["a", "b"]}})),
            "answers",
            "H8",
            hint="accept header keys you do not know (only the four required keys are checked)"
            + ("; echo them back" if echo else ""),
            depends=basic,
        ),
        Check(
            "split-prefix",
            "a request split inside the 2-byte prefix",
            3,
            _split_at(lambda raw: 1, "inside the prefix"),
            "splitting",
            "F2",
            hint="read until 2 bytes are buffered before taking the header length: one recv() is not one "
            "message",
            depends=basic,
        ),
        Check(
            "split-header",
            "a request split inside the JSON header",
            3,
            _split_at(lambda raw: (2 + _header_end(raw)) // 2, "inside the header"),
            "splitting",
            "F2",
            hint="read until 2 + N bytes are buffered before parsing the JSON header: one recv() is not one "
            "message",
            depends=basic,
        ),
        Check(
            "split-content",
            "a request split inside the content",
            3,
            _split_at(lambda raw: (_header_end(raw) + len(raw)) // 2, "inside the content"),
            "splitting",
            "F2",
            hint="read until 2 + N + content-length bytes are buffered before taking the content: one recv() "
            "is not one message",
            depends=basic,
        ),
        Check(
            "split-one-byte",
            "a request sent one byte per send",
            5,
            _check_one_byte,
            "splitting",
            "F2",
            hint="append what each recv() returns to a buffer and parse only whole pieces: a read may "
            "return a single byte",
            depends=_SPLITS,
        ),
        Check(
            "split-random",
            "20 requests cut at seeded random positions",
            10,
            _check_random_splittings,
            "splitting",
            "F2",
            hint="append what each recv() returns to a buffer and parse only whole pieces, wherever the "
            "cuts fall",
            depends=_SPLITS,
        ),
        Check(
            "pipeline-2",
            "2 requests in one send, answered in order",
            4,
            _pipeline(2),
            "pipelining",
            "F3",
            hint="after a message, keep the bytes that follow in the buffer and parse them as the next "
            "message: a pipelined request must not be dropped",
            depends=basic,
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "pipeline-100",
            "100 requests in one send, answered in order",
            8,
            _pipeline(100),
            "pipelining",
            "S1",
            hint="answer every request in the buffer, in order, and keep the connection open until the "
            "peer closes it",
            # 100 requests in one send reach the server in reads cut anywhere: splitting is a precondition.
            depends=("pipeline-2", *_SPLITS),
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "concurrent-connections",
            "50 connections open at once, each answered",
            8,
            _check_many_connections,
            "concurrency",
            "S4",
            hint="serve connections concurrently (selectors, threads or asyncio): one client must not wait "
            "for another",
            depends=basic,
        ),
        Check(
            "concurrent-interleaved",
            "10 connections sending partial requests round robin",
            8,
            _check_interleaved,
            "concurrency",
            "S4",
            hint="keep one receive buffer per connection, never one per server",
            depends=(*_SPLITS, "concurrent-connections"),
        ),
        Check(
            "half-close",
            "a request followed by the client's FIN is still answered",
            5,
            _check_half_close,
            "connection",
            "S5",
            hint="on EOF (recv() returns b''), answer the complete requests before closing",
            depends=basic,
        ),
        Check(
            "slow-sender",
            "a request trickling in is answered; others are served meanwhile",
            8,
            _check_slow_sender,
            "connection",
            "S4",
            hint="never block in one connection's recv(): a slow sender must not hold up other clients",
            depends=(*_SPLITS, "concurrent-connections"),
            measures_memory=True,
        ),
        Check(
            "never-reads",
            "a client that never reads does not stop others being served",
            10,
            _check_never_reads,
            "connection",
            "L3",
            hint="stop reading a connection while much of its output is unsent (backpressure) instead of "
            "buffering answers without bound",
            depends=basic,
            measures_memory=True,
        ),
        Check(
            "never-reads-small-window",
            "a client with a 16 KiB receive buffer that never reads: others served, memory bounded",
            12,
            _check_never_reads_small_window,
            "limits",
            "L3",
            hint="stop reading a connection while much of its output is unsent (pause reading, or "
            "await drain()): answers to a peer that does not read must not pile up in memory",
            depends=("never-reads",),
            measures_memory=True,
        ),
        Check(
            "many-large-requests",
            "96 requests of 1000 KiB, a connection each, are answered; memory stays bounded",
            12,
            _check_many_large_requests,
            "limits",
            "L3",
            hint="drop a request's bytes once it is answered: nothing a peer sent may be kept for the "
            "life of the server",
            depends=("split-content",),
            measures_memory=True,
        ),
        Check(
            "huge-length",
            "content-length 2**40 is refused without waiting for the content",
            6,
            _check_huge_length,
            "limits",
            "L1",
            hint=_VIOLATION_HINTS["content-too-large"],
            depends=basic,
            measures_memory=True,
        ),
    ]
    for row in VIOLATIONS.values():
        what = row.example.description
        if row.is_content:
            verdict = "the application's answer" if echo else f"the error message {row.code}"
        else:
            verdict = "error message or close"
        relaxed = set()
        if row.code in _ANSWER_OK:
            relaxed.add(_ANSWER_OK[row.code])
        if row.is_content:
            relaxed.add("errors_may_close")
        deps = ("huge-length", "split-content") if row.code == "content-too-large" else ("split-content",)
        checks.append(
            Check(
                f"violation-{row.code}",
                f"{what}: {verdict}; others unaffected",
                8,
                _violation_check(row),
                "violations",
                row.rule,
                hint=_VIOLATION_HINTS[row.code],
                depends=deps,
                measures_memory=row.code == "content-too-large",
                relaxed_by=frozenset(relaxed),
            )
        )
    checks += [
        Check(
            "pipeline-after-bad-content",
            "bad text/json content, then a request, in one send: both answered",
            4,
            _check_pipeline_after_bad_content,
            "pipelining",
            "S3",
            hint="answer a request whose content cannot be read with an error message and carry on: the "
            "requests behind it are still in sync",
            depends=("pipeline-2", "violation-content-not-json"),
            relaxed_by=frozenset({"one_request_per_connection", "errors_may_close"}),
        ),
        Check(
            "answer-before-error",
            "a request, then a bad header, in one send: the request is answered, then close",
            4,
            _check_answer_before_error,
            "errors",
            "S2",
            hint="answer every complete request before the bad header, then send the error and close",
            depends=basic,
            relaxed_by=frozenset({"one_request_per_connection"}),
        ),
        Check(
            "no-resync",
            "a bad header, then a request, in one send: the request is never answered",
            4,
            _check_no_resync,
            "errors",
            "F5",
            hint="after a header error stop reading that stream and close it: nothing tells where the next "
            "message starts",
            depends=basic,
        ),
        Check(
            "error-message-shape",
            'an error message is text/json {"error": code, "detail": reason}',
            4,
            _check_error_message_shape,
            "errors",
            "S6",
            hint='send errors as text/json {"error": "<code>", "detail": "<reason>"} in utf-8',
            depends=("violation-content-not-json",),
            relaxed_by=frozenset({"errors_may_close"}),
        ),
    ]
    for suffix, encoding, value in _ENCODED_SEARCHES:
        checks.append(
            Check(
                f"encoding-{suffix}",
                f"a search for {value!r} in text/json {encoding} gets the application's answer",
                3,
                _answer_check(search(value, encoding=encoding)),
                "encodings",
                "C2",
                hint="decode text/json content with its content-encoding (utf-8, utf-16, utf-32, ascii, "
                "latin-1, any case) before parsing it",
                depends=basic,
            )
        )
    for suffix, encoding, content in _FOREIGN_CODECS:
        checks.append(
            Check(
                f"codec-{suffix}",
                f"text/json content in {encoding!r}, not on the allow-list: "
                + ("echoed" if echo else "error message unsupported-encoding"),
                6,
                _foreign_codec_check(encoding, content),
                "encodings",
                "C2",
                hint=_VIOLATION_HINTS["unsupported-encoding"]
                + " (never pass a peer's codec name to bytes.decode)",
                # A server without the allow-list (or without content error messages) fails the
                # canonical rot13 example first: these follow from it.
                depends=("split-content", "violation-unsupported-encoding"),
                relaxed_by=frozenset({"any_codec", "errors_may_close"}),
            )
        )
    for key, values in _BAD_VALUES.items():
        first = f"header-{key}-{values[0][0]}"
        for suffix, value in values:
            # The other bad values of a key follow from the first: one missing check of the key.
            deps = ("split-content",) if suffix == values[0][0] else ("split-content", first)
            checks.append(
                Check(
                    f"header-{key}-{suffix}",
                    f"{key} {json.dumps(value)}: error message invalid-header-value or close",
                    6,
                    _header_value_check(key, value),
                    "header-values",
                    "H7",
                    hint=_header_value_hint(key),
                    depends=deps,
                    relaxed_by=frozenset({"lax_header_values"}),
                )
            )
    return checks


def _header_value_hint(key: str) -> str:
    if key == "byteorder":
        return "check that byteorder is the string 'little' or 'big'; refuse others (invalid-header-value)"
    if key == "content-length":
        return (
            "check type(content-length) is int (bool and float are not) and >= 0 before using it; refuse it "
            "(invalid-header-value)"
        )
    return f"check that {key} is a non-empty string; refuse anything else (invalid-header-value)"


#: Every check of the search application, in the order the probe runs them.
CHECKS: list[Check] = lpjson_checks()


def check_names(checks: Sequence[Check] | None = None) -> list[str]:
    return [check.name for check in (CHECKS if checks is None else checks)]


def find_check(name: str, checks: Sequence[Check] | None = None) -> Check:
    for check in CHECKS if checks is None else checks:
        if check.name == name:
            return check
    raise KeyError(name)
