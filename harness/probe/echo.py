"""The probe's checks for a raw byte-echo server (``harness probe --protocol echo``).

The guide's first servers, ``echo-server.py`` and ``multiconn-server.py``, speak no
protocol: every byte a client sends comes back on the same connection. These checks judge
such a server by the rules of docs/PROTOCOL.md#byte-echo (X1-X6): bytes echoed in order
however they are split, of every value, several MiB whole, many connections at once each
getting exactly its own bytes, half-close, slow senders, resets, and a client that sends
without ever reading.

They have the shape of the lpjson checks (:class:`~harness.probe.checks.Check`, run by
:func:`~harness.probe.runner.run_checks`): each uses fresh recorded connections, returns a
one-line detail or raises :class:`~harness.probe.checks.CheckFailed` (``spec``: bytes lost,
changed, reordered, crossed or a connection left open; ``unsafe``: silence, other clients
not served, the server gone, or a client's echo buffered without bound). An
:class:`EchoCheck` adds a one-line ``hint`` (what to fix), ``measures_memory`` (a process
monitor should sample the server's memory during it) and its own "is the server still
serving" probe, an echo instead of an lpjson request. Payloads come from
``random.Random`` seeded with ``--seed``: the same seed sends the same bytes.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.probe.checks import Check, CheckContext, CheckFailed
from harness.probe.wire import CheckTimeout, End, RawReading, WireConnection

__all__ = [
    "CHECKS",
    "ECHO_CHECKS",
    "EchoCheck",
    "echo_still_served",
    "echoed",
    "find_echo_check",
]

#: What silence on one of several connections open at once means.
_BUSY = "the server is serving another connection, or hangs"
#: Pause between chunks meant to reach the server as separate reads.
_SPLIT_PAUSE = 0.002
#: Pause between the rounds of partial sends across connections.
_ROUND_PAUSE = 0.03
#: How often a read that waits for an echo looks at what arrived (a wrong byte ends it early).
_READ_SLICE = 0.1
#: The large payload; its reader starts this late, so that the server's sends fill the
#: socket buffers and come back short (a server that ignores send()'s count loses bytes).
_LARGE = 8 << 20
_LARGE_READER_DELAY = 0.1
#: ... and the echo of it must not pause longer than this.
_LARGE_IDLE = 2.0
#: A client that never reads: at most this much is sent...
_NEVER_READS_LIMIT = 64 << 20
#: ... in pieces of this size; a piece not taken within _BLOCKED seconds means the server
#: stopped reading, which is confirmed when, after _SETTLE seconds, less than
#: _STILL_READING bytes are taken within _PROBE seconds. The window is long because a
#: server that keeps reading can still be slow to free its receive buffer: the guide's
#: ``data.outb += recv_data`` copies the whole held echo for each 1 KiB it reads, so at
#: 12 MiB held one window update's worth takes ~130 ms, several times that on a busy machine.
_NEVER_READS_BLOCK = 256 << 10
_BLOCKED = 0.25
_SETTLE = 0.15
_PROBE = 1.5
_STILL_READING = 64 << 10


@dataclass(frozen=True)
class EchoCheck(Check):
    """A check of a byte-echo server (``rule`` is one of docs/PROTOCOL.md#byte-echo's X rules).

    ``hint`` says in one line what to fix when the check fails; ``measures_memory`` marks the
    checks during which a bad server's memory grows (a process monitor samples it then).
    """

    hint: str = ""
    measures_memory: bool = False

    def still_served(self, ctx: CheckContext, label: str, why: str) -> None:
        """The runner's probe after a ``spec`` failure: a fresh connection is still echoed."""
        echo_still_served(ctx, label, why)


# -- bytes and their comparison ------------------------------------------------------


def _payload(seed: int, size: int, salt: str) -> bytes:
    """``size`` bytes drawn from ``random.Random`` seeded with ``seed`` and ``salt``."""
    return random.Random(f"{seed}:{salt}").randbytes(size)


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} byte{'s' if n != 1 else ''}"


def _whose(fragment: bytes, others: dict[str, bytes]) -> str:
    """Which other connection's payload holds ``fragment`` ("" when none does)."""
    if len(fragment) < 4:
        return ""
    for label, data in others.items():
        if fragment in data:
            return f" (bytes {label} sent)"
    return ""


def mismatch(got: bytes, want: bytes, others: dict[str, bytes] | None = None) -> str | None:
    """Why ``got`` is not a prefix of ``want`` (None when it is)."""
    common = min(len(got), len(want))
    if got[:common] == want[:common]:
        return None if len(got) <= len(want) else f"{_size(len(got) - len(want))} more than were sent"
    lo, hi = 0, common  # got[:lo] == want[:lo] and got[:hi] != want[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if got[:mid] == want[:mid] else (lo, mid)
    at = lo
    fragment = got[at : at + 16]
    where = _whose(fragment, others or {})
    if not where and len(fragment) >= 4 and fragment in want:
        sent_at = want.index(fragment, at) if fragment in want[at:] else want.index(fragment)
        if sent_at > at:
            where = f" (bytes sent at {sent_at}: the {_size(sent_at - at)} before them were lost)"
        else:
            where = f" (bytes sent at {sent_at}, again: out of order)"
    return f"byte {at} differs: got {got[at : at + 8]!r}{where}, expected {want[at : at + 8]!r}"


def read_echo(conn: WireConnection, want: bytes, timeout: float, idle: float | None = None) -> RawReading:
    """Read until ``want`` came back, a byte differs, the server closes or resets, ``timeout``
    seconds passed, or (with ``idle``) nothing arrived for ``idle`` seconds."""
    now = time.monotonic()
    end_at = now + timeout
    quiet_until = end_at if idle is None else now + idle
    got = bytearray()
    while len(got) < len(want):
        left = min(end_at, quiet_until) - time.monotonic()
        if left <= 0:
            return RawReading(bytes(got), End.TIMEOUT)
        reading = conn.read_bytes(len(want) - len(got), min(left, _READ_SLICE))
        before = len(got)
        got += reading.data
        if reading.end is not End.TIMEOUT or got[before:] != want[before : len(got)]:
            return RawReading(bytes(got), reading.end)
        if idle is not None and reading.data:
            quiet_until = time.monotonic() + idle
    return RawReading(bytes(got), End.COMPLETE)


def verify_echo(
    reading: RawReading,
    want: bytes,
    what: str,
    bound: float,
    others: dict[str, bytes] | None = None,
    silence: str = "the server hangs",
) -> str:
    """Raise :class:`CheckFailed` unless ``reading`` is ``want``, whole.

    A changed byte, a connection closed early or bytes lost before silence are ``spec``;
    silence with nothing echoed at all is ``unsafe``, and ``silence`` says what it means.
    ``others`` (label -> bytes) are the other connections' payloads, to name a crossing.
    """
    what = f"{what}: " if what else ""
    problem = mismatch(reading.data, want, others)
    if problem is not None:
        raise CheckFailed(f"{what}{problem}")
    if len(reading.data) == len(want):
        return f"{_size(len(want))} echoed"
    got = f"{_size(len(reading.data))} of {_size(len(want))} echoed"
    if reading.end is End.TIMEOUT:
        if not reading.data:
            raise CheckFailed(f"{what}no echo for {bound:.1f}s ({silence})", "unsafe")
        raise CheckFailed(f"{what}{got}, then silence for {bound:.1f}s: the rest was lost")
    closed = "closed the connection" if reading.end is End.EOF else "reset the connection"
    raise CheckFailed(f"{what}{got}, then the server {closed}")


def echoed(
    ctx: CheckContext,
    data: bytes,
    chunks: Sequence[bytes] | None = None,
    *,
    pause: float = 0.0,
    read_bound: float = 3.0,
    label: str = "",
    silence: str = "the server hangs",
) -> str:
    """Send ``data`` (as ``chunks`` if given) on a fresh connection and check that it comes back."""
    conn = ctx.connect(label)
    if chunks is None:
        chunks = [data]
    assert b"".join(chunks) == data, "chunks must cover the data exactly"
    # A send that breaks still leaves the echo sent before that to be read.
    conn.send_chunks(chunks, pause)
    bound = ctx.bound(read_bound)
    detail = verify_echo(read_echo(conn, data, bound), data, label, bound, silence=silence)
    conn.close()
    return detail


def echo_still_served(ctx: CheckContext, label: str, why: str) -> None:
    """A fresh connection gets its bytes back, or the check fails as unsafe."""
    data = b"still there?"
    try:
        echoed(ctx, data, read_bound=2.0, label=label)
    except CheckFailed as failure:
        raise CheckFailed(f"{why}: {failure.detail}", "unsafe") from None


def _sent(conn: WireConnection) -> int:
    return sum(len(chunk.data) for chunk in conn.transcript.chunks if chunk.outgoing)


# -- the server keeps serving ---------------------------------------------------------


def _check_serves_again(ctx: CheckContext) -> str:
    rounds = 3
    for index in range(1, rounds + 1):
        label = f"connection {index} of {rounds}, one after another"
        # The probe connected once before this check, to see that the server was up.
        before = f"connection {index - 1}" if index > 1 else "the probe's first connection"
        why = f"the server stopped serving after {before} ended"
        data = f"connection #{index}\n".encode()
        try:
            conn = ctx.recorder.connect(label)
        except CheckTimeout:
            raise
        except OSError as exc:  # refused, or timed out
            raise CheckFailed(f"{label}: cannot connect ({exc.strerror or exc}): {why}", "unsafe") from None
        conn.send(data)
        bound = ctx.bound(2.0)
        reading = read_echo(conn, data, bound)
        if not reading.data and reading.end is not End.COMPLETE:
            ended = {End.EOF: "closed at once", End.RESET: "reset at once", End.TIMEOUT: "never echoed"}
            raise CheckFailed(f"{label}: {ended.get(reading.end, 'failed')}: {why}", "unsafe")
        verify_echo(reading, data, label, bound)
        conn.close()
    return f"{rounds} connections one after another, each echoed"


def _check_reset(ctx: CheckContext) -> str:
    bystander_data = _payload(ctx.seed, 4096, "reset-bystander")
    bystander = ctx.connect("bystander")
    half = len(bystander_data) // 2
    bystander.send(bystander_data[:half])
    victim = ctx.connect("client that resets")
    victim.send(_payload(ctx.seed, 64 << 10, "reset"))
    victim.read_bytes(1, ctx.bound(1.0))  # the server is echoing it: reset mid-stream
    victim.abort()
    time.sleep(min(0.1, ctx.recorder.remaining()))  # let the server see the RST first
    try:
        bystander.send(bystander_data[half:])
        bound = ctx.bound(2.0)
        verify_echo(read_echo(bystander, bystander_data, bound), bystander_data, "bystander", bound)
    except CheckFailed as failure:
        raise CheckFailed(
            f"after another client reset its connection: {failure.detail} (the server died?)", "unsafe"
        ) from None
    bystander.close()
    echo_still_served(ctx, "a fresh connection", "after a client reset its connection")
    return "a client reset its connection mid-echo; a bystander and a fresh connection still echoed"


# -- bytes, in order, however split ------------------------------------------------------


def _check_small(ctx: CheckContext) -> str:
    data = b"Hello, world"
    return f"{echoed(ctx, data)}: {data!r}"


def _check_one_byte(ctx: CheckContext) -> str:
    data = b"one byte per send: 0123456789abcdefghijklmnopqrstuvwxyz!"
    echoed(ctx, data, [data[i : i + 1] for i in range(len(data))], pause=_SPLIT_PAUSE)
    return f"{len(data)} sends of 1 byte echoed in order"


def random_splittings(seed: int, count: int = 12) -> list[tuple[bytes, list[bytes]]]:
    """``count`` random payloads (1 byte to 4 KiB), each cut at positions drawn from
    ``random.Random(seed)``: the same seed gives the same bytes and cuts."""
    rng = random.Random(f"{seed}:splits")
    out = []
    for _ in range(count):
        data = rng.randbytes(rng.randint(1, 4096))
        n = len(data)
        cuts = sorted(rng.sample(range(1, n), min(n - 1, rng.randint(1, 12)))) if n > 1 else []
        bounds = [0, *cuts, n]
        out.append((data, [data[a:b] for a, b in itertools.pairwise(bounds)]))
    return out


def _check_random_splits(ctx: CheckContext) -> str:
    conn = ctx.connect("one connection, every splitting")
    splittings = random_splittings(ctx.seed)
    total = 0
    for index, (data, chunks) in enumerate(splittings, 1):
        conn.send_chunks(chunks, _SPLIT_PAUSE)
        bound = ctx.bound(2.0)
        cuts = list(itertools.accumulate(len(c) for c in chunks[:-1]))
        label = f"splitting #{index} ({_size(len(data))}, seed {ctx.seed}, cuts {cuts})"
        verify_echo(read_echo(conn, data, bound), data, label, bound)
        total += len(data)
    conn.close()
    return f"{len(splittings)} seeded splittings ({_size(total)}) echoed in order (seed {ctx.seed})"


def _check_binary(ctx: CheckContext) -> str:
    data = (
        bytes(range(256))
        + bytes(range(255, -1, -1))
        + b"\r\n\n\r\x00\x00"
        + b"\xc3\x28\xed\xa0\x80\xf0\x28\x8c\x28\xff\xfe"  # invalid UTF-8
        + "é🐶".encode("utf-16-le")
        + b"   trailing spaces and a newline   \n"
    )
    echoed(ctx, data)
    return f"{len(data)} bytes, every value 0-255, invalid UTF-8, CR/LF, NUL: echoed unchanged"


# -- size ----------------------------------------------------------------------------------


def _check_large(ctx: CheckContext) -> str:
    data = _payload(ctx.seed, _LARGE, "large")
    conn = ctx.connect("large payload")
    bound = ctx.bound(8.0)
    readings: list[RawReading] = []

    idle = ctx.bound(_LARGE_IDLE)

    def read() -> None:
        time.sleep(_LARGE_READER_DELAY)
        readings.append(read_echo(conn, data, bound, idle))

    reader = threading.Thread(target=read, name="probe-echo-large-reader", daemon=True)
    started = time.monotonic()
    reader.start()
    conn.send(data)  # a server that stops reading runs the check into its bound: CheckTimeout
    reader.join(bound + _LARGE_READER_DELAY + 1.0)
    if not readings:
        raise CheckTimeout("the echo was still being read at the check's bound")
    verify_echo(readings[0], data, f"{_size(len(data))} sent while reading", idle)
    conn.close()
    return f"{_size(len(data))} echoed whole in {time.monotonic() - started:.2f}s"


# -- concurrency -----------------------------------------------------------------------------


def _verify_connections(conns: dict[str, WireConnection], payloads: dict[str, bytes], bound: float) -> None:
    """Each connection got exactly its own payload back, within ``bound`` seconds for all.

    When one comes up short, the others are searched for the missing bytes: a server that
    shares one buffer between connections sends them to whichever connection it serves next.
    """
    end_at = time.monotonic() + bound
    for label, conn in conns.items():
        want = payloads[label]
        others = {other: data for other, data in payloads.items() if other != label}
        reading = read_echo(conn, want, max(0.0, end_at - time.monotonic()))
        try:
            verify_echo(reading, want, label, bound, others, _BUSY)
        except CheckFailed:
            got = len(reading.data)
            if reading.data == want[:got] and got < len(want):
                elsewhere = _received_by(want[got : got + 16], label, conns)
                if elsewhere:
                    raise CheckFailed(
                        f"{label}: {_size(got)} of {_size(len(want))} echoed; the next bytes it sent were "
                        f"echoed to {elsewhere}"
                    ) from None
            raise


def _received_by(fragment: bytes, label: str, conns: dict[str, WireConnection]) -> str:
    """The label of another connection that received ``fragment`` ("" when none did)."""
    if len(fragment) < 4:
        return ""
    for other, conn in conns.items():
        if other != label and fragment in conn.transcript.received + conn.read_bytes(None, 0.02).data:
            return other
    return ""


def _check_concurrent(ctx: CheckContext) -> str:
    count = 50
    labels = [f"connection {i + 1} of {count}" for i in range(count)]
    conns = [ctx.connect(label) for label in labels]
    payloads = {label: _payload(ctx.seed, 2048, label) for label in labels}
    for conn, label in zip(conns, labels, strict=True):
        conn.send(payloads[label])
    _verify_connections(dict(zip(labels, conns, strict=True)), payloads, ctx.bound(4.0))
    for conn in conns:
        conn.close()
    return f"{count} connections open at once, each got exactly its own {_size(2048)} back"


def _check_interleaved(ctx: CheckContext) -> str:
    count, pieces = 10, 6
    rng = random.Random(f"{ctx.seed}:interleaved")
    labels = [f"connection {i + 1} of {count}" for i in range(count)]
    conns = [ctx.connect(label) for label in labels]
    chunked = {label: [rng.randbytes(rng.randint(64, 1500)) for _ in range(pieces)] for label in labels}
    payloads = {label: b"".join(chunks) for label, chunks in chunked.items()}
    for round_ in range(pieces):
        for conn, label in zip(conns, labels, strict=True):
            conn.send(chunked[label][round_])
        time.sleep(min(_ROUND_PAUSE, ctx.recorder.remaining()))
    _verify_connections(dict(zip(labels, conns, strict=True)), payloads, ctx.bound(3.0))
    for conn in conns:
        conn.close()
    return f"{count} connections sending {pieces} pieces each, round robin: each got exactly its own bytes"


# -- connection life -------------------------------------------------------------------------


def _check_half_close(ctx: CheckContext) -> str:
    data = _payload(ctx.seed, 64 << 10, "half-close")
    conn = ctx.connect("half-close")
    step = len(data) // 4
    conn.send_chunks([data[i : i + step] for i in range(0, len(data), step)], _SPLIT_PAUSE)
    conn.shutdown_write()
    bound = ctx.bound(3.0)
    verify_echo(read_echo(conn, data, bound), data, "after the client's FIN", bound)
    wait = ctx.bound(1.0)
    after = conn.read_bytes(None, wait)
    if after.data:
        raise CheckFailed(f"after the client's FIN: echoed every byte, then {_size(len(after.data))} more")
    if after.end is End.TIMEOUT:
        raise CheckFailed(
            f"after the client's FIN: echoed every byte, but the connection was still open {wait:.1f}s "
            "later (the server never closes it)"
        )
    then = "then closed" if after.end is End.EOF else "then reset the connection"
    return f"{_size(len(data))} echoed after the client's FIN; {then}"


def _check_slow_sender(ctx: CheckContext) -> str:
    data = b"a slow client, 8 bytes every 40 ms, while others are served meanwhile.."
    step, pause = 8, 0.04
    chunks = [data[i : i + step] for i in range(0, len(data), step)]
    slow = ctx.connect("slow sender")
    slow.send_chunks(chunks[:3], pause)
    try:
        label = "another client while the slow one is mid-stream"
        echoed(ctx, b"another client", label=label, read_bound=2.0, silence=_BUSY)
    except CheckFailed as failure:
        raise CheckFailed(failure.detail, "unsafe") from None
    slow.send_chunks(chunks[3:], pause)
    bound = ctx.bound(3.0)
    verify_echo(read_echo(slow, data, bound), data, "slow sender", bound)
    slow.close()
    return f"{len(chunks)} sends {int(pause * 1000)} ms apart echoed; another client served meanwhile"


def _push_without_reading(ctx: CheckContext, hog: WireConnection) -> tuple[str, bool]:
    """Send to ``hog`` without reading its echo; (how it ended, whether the server kept reading)."""
    block = _payload(ctx.seed, _NEVER_READS_BLOCK, "never-reads")
    push_until = time.monotonic() + ctx.bound(3.0)
    while _sent(hog) < _NEVER_READS_LIMIT and time.monotonic() < push_until:
        try:
            if not hog.send(block, timeout=_BLOCKED):
                return "until the server closed the connection", False
            continue
        except CheckTimeout:
            if hog.deadline_left(None) <= 0:
                raise
        # Blocked: has the server stopped reading, or is it only slow?
        before = _sent(hog)
        time.sleep(min(_SETTLE, ctx.recorder.remaining()))
        try:
            if not hog.send(block, timeout=_PROBE):
                return "until the server closed the connection", False
        except CheckTimeout:
            if hog.deadline_left(None) <= 0:
                raise
            if _sent(hog) - before < _STILL_READING:
                return "until the server stopped reading it (backpressure)", False
    sent = _sent(hog)
    if sent >= _NEVER_READS_LIMIT:
        return f"and the server took all {_size(sent)} without stopping", True
    return f"in {ctx.bound(3.0):.1f}s and the server was still reading", True


def _check_never_reads(ctx: CheckContext) -> str:
    hog = ctx.connect("client that never reads")
    how, unbounded = _push_without_reading(ctx, hog)
    sent = _size(_sent(hog))
    problems = []
    if unbounded:
        problems.append(
            f"a client that sends and never reads sent {sent} {how}: the server keeps reading a client "
            "whose echo it cannot send, so it holds that echo in memory (growing as long as the client "
            "sends) or drops it"
        )
    try:
        label = "another client while the non-reader is connected"
        echoed(ctx, b"another client", label=label, read_bound=2.0, silence=_BUSY)
        hog.abort()
        time.sleep(min(0.1, ctx.recorder.remaining()))  # let the server see the reset first
        echo_still_served(ctx, "a fresh connection", "after the non-reader reset its connection")
    except CheckFailed as failure:
        with_hog = f"with a client that sent {sent} and never read: "
        problems.append(failure.detail if unbounded else with_hog + failure.detail)
    if problems:
        raise CheckFailed("; ".join(problems), "unsafe")
    return f"a client that never reads sent {sent} {how}; others still served"


# -- the list ------------------------------------------------------------------------------------


def _build() -> list[EchoCheck]:
    return [
        EchoCheck(
            "echo-serves-again",
            "3 connections one after another, each echoed",
            5,
            _check_serves_again,
            "serving",
            rule="X1",
            hint="accept() in a loop: serving one client must not end the server "
            "(the guide's echo-server.py serves one connection, then exits)",
        ),
        EchoCheck(
            "echo-small",
            "the guide's b'Hello, world' comes back",
            3,
            _check_small,
            "bytes",
            rule="X2",
            hint="send back exactly the bytes recv() returned, with sendall()",
        ),
        EchoCheck(
            "echo-one-byte",
            "bytes sent one per send come back in order",
            4,
            _check_one_byte,
            "splitting",
            rule="X2",
            hint="echo every recv() as it comes, until recv() returns b'': one recv() is not one message",
        ),
        EchoCheck(
            "echo-random-splits",
            "12 random payloads cut at seeded random positions, one connection",
            8,
            _check_random_splits,
            "splitting",
            rule="X2",
            hint="keep reading and echoing until recv() returns b'': the client's sends are not your reads",
        ),
        EchoCheck(
            "echo-binary",
            "bytes of every value (NUL, CR/LF, invalid UTF-8) come back unchanged",
            3,
            _check_binary,
            "bytes",
            rule="X2",
            hint="treat the data as bytes: no decode()/encode(), no strip(), no line handling",
        ),
        EchoCheck(
            "echo-large",
            f"{_LARGE >> 20} MiB sent while reading come back whole (the server's sends come back short)",
            10,
            _check_large,
            "size",
            rule="X3",
            hint="use sendall(), or keep the unsent rest (outb = outb[sent:]) until send() has taken "
            "every byte",
            measures_memory=True,
        ),
        EchoCheck(
            "echo-concurrent",
            "50 connections open at once, each gets exactly its own bytes",
            8,
            _check_concurrent,
            "concurrency",
            rule="X4",
            hint="serve connections concurrently (selectors, threads, asyncio), one buffer per connection",
        ),
        EchoCheck(
            "echo-interleaved",
            "10 connections sending pieces round robin, each gets exactly its own bytes",
            8,
            _check_interleaved,
            "concurrency",
            rule="X4",
            hint="keep each connection's unsent bytes in its own buffer, created per connection",
        ),
        EchoCheck(
            "echo-half-close",
            "64 KiB then the client's FIN: every byte echoed, then the server closes",
            6,
            _check_half_close,
            "connection",
            rule="X5",
            hint="when recv() returns b'', send what is left, then close() the socket",
        ),
        EchoCheck(
            "echo-slow-sender",
            "a client trickling bytes is echoed; another client is served meanwhile",
            6,
            _check_slow_sender,
            "connection",
            rule="X4",
            hint="never wait on one client: serve connections concurrently, so a slow or idle one "
            "blocks nobody",
            measures_memory=True,
        ),
        EchoCheck(
            "echo-reset",
            "a client resets mid-echo: a bystander and a fresh connection are still echoed",
            5,
            _check_reset,
            "connection",
            rule="X1",
            hint="catch OSError (ConnectionResetError) around each connection's recv()/send() and close only "
            "that connection",
        ),
        EchoCheck(
            "echo-never-reads",
            "a client that sends and never reads is stopped (backpressure or close); others still served",
            10,
            _check_never_reads,
            "limits",
            rule="X6",
            hint="stop reading a client while its unsent echo is over a bound (unregister EVENT_READ, or "
            "await drain() in asyncio)",
            measures_memory=True,
        ),
    ]


#: Every echo check, in the order the probe runs them.
ECHO_CHECKS: list[EchoCheck] = _build()


def find_echo_check(name: str) -> EchoCheck:
    for check in ECHO_CHECKS:
        if check.name == name:
            return check
    raise KeyError(name)


#: This protocol's checks, under the name :mod:`harness.probe.catalog` looks for.
CHECKS: list[Check] = list(ECHO_CHECKS)
