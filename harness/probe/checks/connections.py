"""Checks of connections and limits: many at once and interleaved, half-close, slow senders,
clients that never read, many large requests, a huge declared length."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from harness.frames import frame
from harness.probe.checks.answers import binary, error_code, exchange, search, still_served, verify_answers
from harness.probe.checks.context import _BYTEORDER, _ROUND_PAUSE, CheckContext, CheckFailed
from harness.probe.checks.violations import _outcome
from harness.probe.wire import CheckTimeout, End

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


#: Silence allowed past the idle timeout the user declares, before the peer counts as never cut off.
IDLE_MARGIN = 2.0


def idle_timeout_run(seconds: float) -> Callable[[CheckContext], str]:
    """L2 for a server whose idle timeout is at most ``seconds``: half a request, then
    silence; the server must cut the connection off (an ``idle-timeout`` error message
    first is what the reference does, and is noted when missing, not failed)."""

    def run(ctx: CheckContext) -> str:
        raw = search("morpheus").encode()
        quiet = ctx.connect("peer gone quiet mid-request")
        quiet.send(raw[: len(raw) // 2])
        started = time.monotonic()
        bound = ctx.bound(seconds + IDLE_MARGIN)
        reading = quiet.read_until_close(bound)
        waited = time.monotonic() - started
        if reading.end is End.TIMEOUT:
            raise CheckFailed(
                f"a peer that sent half a request and went quiet was still connected after {waited:.1f} s "
                f"(an idle timeout of at most {seconds:g} s was asked for): a silent peer holds its "
                "connection, and its buffer, for as long as it likes",
                "unsafe",
            )
        codes = [error_code(m) for m in reading.messages]
        quiet.close()
        still_served(ctx, "a fresh connection", "after the idle peer was cut off")
        how = {End.EOF: "closed", End.RESET: "reset"}.get(reading.end, reading.end.value)
        if "idle-timeout" in codes:
            return f"cut off after {waited:.1f} s of silence: the idle-timeout error message, then {how}"
        ctx.note("no idle-timeout error message before the close (docs/PROTOCOL.md#l2)")
        return f"cut off ({how}) after {waited:.1f} s of silence"

    return run
