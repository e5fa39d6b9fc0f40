"""An lpjson load generator: many connections, pipelined requests, latency percentiles.

Two client patterns, both on asyncio protocols (uvloop when asked and installed):

- ``pipeline`` (the default): ``connections`` long-lived connections, each keeping
  ``depth`` requests in flight. Every answer received is replaced at once by a new
  request, written together with the others that the same ``recv`` completed.
- ``connect-per-request``: the guide's client pattern: ``connections`` concurrent
  workers, each opening a new connection for every request, reading one answer and
  closing.

An *answer* is any well-formed lpjson message coming back, in order; an echo server
returning the requests themselves therefore counts as a perfect server (that is the
point: it is the ceiling a Python server can reach on this loopback). Framing is read
with :func:`harness.decoder.parse_header`; each distinct response is decoded once by
the real :class:`~harness.decoder.Decoder` and the verdict cached. Once the first good
answer to every request is known, a batch of answers is checked byte for byte against
the expected ones with a single comparison, so the generator costs well under a
microsecond of CPU per answer and is not the bottleneck. A response carrying an
``{"error": ...}`` object (the reference server's error message) counts as an error,
not an answer. Latencies go into a :class:`LatencyHistogram` (bounded memory).

Library code here logs; :func:`run_load` reports progress through a callback and the
``harness load`` command prints it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import re
import selectors
import subprocess
import sys
import time
from bisect import bisect_right
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, cast

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder, parse_header
from harness.errors import ProtocolError
from harness.message import Message

__all__ = [
    "MODES",
    "HostileMix",
    "HostileResult",
    "LatencyHistogram",
    "LoadConfig",
    "LoadResult",
    "LoadStatus",
    "ServerProcess",
    "default_requests",
    "run_hostile_mix",
    "run_hostile_mix_async",
    "run_load",
    "run_load_async",
]

log = logging.getLogger(__name__)

MODES = ("pipeline", "connect-per-request")
_CACHE_LIMIT = 4096  # distinct headers / responses remembered (bounded memory on a hostile server)
_CACHED_FRAME_MAX = 16384  # larger responses are decoded every time rather than remembered
_now = time.perf_counter_ns


def default_requests() -> list[bytes]:
    """The guide's requests: the four searches of docs/PROTOCOL.md#a1 and one binary request."""
    queries = ("morpheus", "ring", "🐶", "needle")
    messages = [Message.from_json({"action": "search", "value": value}) for value in queries]
    messages.append(Message.from_bytes("binary😃".encode()))
    return [message.encode() for message in messages]


@dataclass(frozen=True)
class LoadConfig:
    """What to run: target, client pattern and sizes."""

    host: str
    port: int
    connections: int = 50
    depth: int = 10
    duration: float = 10.0
    warmup: float = 0.0
    mode: str = "pipeline"
    requests: Sequence[bytes] = field(default_factory=default_requests)
    timeout: float = 5.0  # no byte for this long while answers are due -> error, reconnect
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    status_interval: float = 1.0
    #: Write the requests that replace a batch of answers in one write (True), or each in
    #: its own write, as a client that sends a request whenever an answer arrives (False).
    coalesce: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.connections < 1 or self.depth < 1:
            raise ValueError("connections and depth must be >= 1")
        # (written so that NaN fails too: a NaN timer would never end the run)
        if not (self.duration > 0 and self.warmup >= 0 and self.timeout > 0):
            raise ValueError("duration and timeout must be > 0, warmup >= 0")
        if not self.requests:
            raise ValueError("at least one request is needed")


@dataclass(frozen=True)
class LoadStatus:
    """A periodic snapshot, for a live status line."""

    elapsed: float  # seconds since the start (warm-up included)
    measuring: bool  # False during warm-up
    answers: int  # answers counted so far (measured window only)
    interval_rate: float  # answers (and error responses) per second over the last interval
    interval_p99_ms: float  # p99 latency over the last interval (nan if none)
    errors: int
    open_connections: int


@dataclass
class LoadResult:
    """What a run measured. Latencies in milliseconds."""

    host: str
    port: int
    mode: str
    connections: int
    depth: int
    duration: float  # measured window, seconds
    answers: int
    sent: int
    errors: dict[str, int]
    latency: LatencyHistogram = field(repr=False)

    @property
    def requests_per_second(self) -> float:
        return self.answers / self.duration if self.duration > 0 else 0.0

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def latency_ms(self) -> dict[str, float]:
        """p50/p90/p99 (within 1.6%), max and mean latency in ms (nan when nothing was answered)."""
        hist = self.latency
        empty = not hist.count
        return {
            "p50": hist.percentile(50) / 1e6,
            "p90": hist.percentile(90) / 1e6,
            "p99": hist.percentile(99) / 1e6,
            "max": float("nan") if empty else hist.max / 1e6,
            "mean": hist.mean / 1e6,
        }

    def to_json(self) -> dict[str, Any]:
        latency = {k: (None if math.isnan(v) else round(v, 4)) for k, v in self.latency_ms().items()}
        return {
            "target": f"{self.host}:{self.port}",
            "mode": self.mode,
            "connections": self.connections,
            "depth": self.depth,
            "duration_s": round(self.duration, 3),
            "answers": self.answers,
            "sent": self.sent,
            "requests_per_s": round(self.requests_per_second, 1),
            "latency_ms": latency,
            "errors": dict(sorted(self.errors.items())),
            "errors_total": self.errors_total,
        }

    def summary(self) -> str:
        lat = self.latency_ms()
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        return (
            f"{self.mode} {self.host}:{self.port}  c={self.connections} d={self.depth}  "
            f"{self.duration:.1f}s: {self.answers} answers, {self.requests_per_second:,.0f} req/s\n"
            f"latency p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  p99 {lat['p99']:.3f} ms  "
            f"max {lat['max']:.3f} ms\nerrors: {errors}"
        )


_SUB_BITS = 6  # 64 sub-buckets per power of two: a recorded value is off by at most 1/64
_EXACT = 1 << (_SUB_BITS + 1)  # values below this are kept exactly


class LatencyHistogram:
    """Latencies in nanoseconds, log-linear buckets (HdrHistogram's idea), bounded memory.

    Values below 128 ns are exact; above, each power of two is split into 64 buckets,
    so a percentile is within 1.6% of the true value whatever the run length. ``max``
    and ``mean`` are exact.
    """

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        self.buckets: list[int] = [0] * ((64 - _SUB_BITS + 1) << _SUB_BITS)  # any int64 value
        self.count = 0
        self.total = 0
        self.max = 0

    @staticmethod
    def bucket(value: int) -> int:
        shift = value.bit_length() - _SUB_BITS - 1
        if shift <= 0:
            return value
        return (shift << _SUB_BITS) + (value >> shift)

    @staticmethod
    def _lowest(index: int) -> int:
        """The smallest value that falls in bucket ``index``."""
        shift = (index >> _SUB_BITS) - 1
        if shift <= 0:
            return index
        return (index - (shift << _SUB_BITS)) << shift

    def add(self, value: int, n: int = 1) -> None:
        """Record ``value`` (ns, >= 0) ``n`` times."""
        self.buckets[self.bucket(value)] += n
        self.count += n
        self.total += value * n
        if value > self.max:
            self.max = value

    def percentile(self, pct: float) -> float:
        """The nearest-rank ``pct`` percentile (the middle of its bucket, never above max); nan if empty."""
        if not self.count:
            return float("nan")
        rank = max(1, math.ceil(pct / 100 * self.count))
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                low = self._lowest(index)
                high = self._lowest(index + 1) - 1
                return float(min((low + high) / 2, self.max))
        return float(self.max)  # pragma: no cover - the counts always reach rank

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def copy(self) -> LatencyHistogram:
        other = LatencyHistogram()
        other.buckets = list(self.buckets)
        other.count, other.total, other.max = self.count, self.total, self.max
        return other

    def since(self, earlier: LatencyHistogram) -> LatencyHistogram:
        """What was recorded after ``earlier`` (a :meth:`copy` of this histogram) was taken.

        ``max`` is the largest bucket's upper value then (exact when nothing larger came before).
        """
        other = LatencyHistogram()
        other.buckets = [a - b for a, b in zip(self.buckets, earlier.buckets, strict=True)]
        other.count = self.count - earlier.count
        other.total = self.total - earlier.total
        top = max((i for i, n in enumerate(other.buckets) if n), default=None)
        if top is not None:
            other.max = self.max if self.max < self._lowest(top + 1) else self._lowest(top + 1) - 1
        return other


class _ResponseReader:
    """Frames responses and classifies them, caching per distinct header and per distinct response."""

    def __init__(self, max_content_length: int) -> None:
        self.max_content_length = max_content_length
        self._lengths: dict[bytes, int] = {}
        self._verdicts: dict[bytes, str | None] = {}

    def content_length(self, raw_header: bytes) -> int:
        length = self._lengths.get(raw_header)
        if length is None:
            _, length = parse_header(raw_header, 0, self.max_content_length)  # may raise ProtocolError
            if len(self._lengths) < _CACHE_LIMIT:
                self._lengths[raw_header] = length
        return length

    def verdict(self, frame: bytes) -> str | None:
        """``None`` for a good answer, else the error kind (an error response from the server)."""
        try:
            return self._verdicts[frame]
        except KeyError:
            pass
        verdict: str | None = None
        (message,) = Decoder(self.max_content_length).feed(frame)
        if message.is_json:
            try:
                value = message.json()
            except ProtocolError:
                verdict = "bad-response-content"
            else:
                if isinstance(value, dict) and "error" in value:
                    verdict = f"error-response:{value['error']}"
        if len(frame) <= _CACHED_FRAME_MAX and len(self._verdicts) < _CACHE_LIMIT:
            self._verdicts[frame] = verdict
        return verdict


class _Run:
    """State shared by every connection of one run."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.reader = _ResponseReader(config.max_content_length)
        self.measuring = False
        self.sending = True
        self.answers = 0  # good answers in the measured window
        self.seen = 0  # every answer or error response, warm-up included (for the status line)
        self.sent = 0
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()  # every answer's latency, warm-up included
        self.clients: set[_PipelineClient] = set()
        # The request ring: requests[i:i+k] for any i < n and k <= depth is one slice of `ring`.
        reqs = list(config.requests)
        n = len(reqs)
        extended = [reqs[j % n] for j in range(n + max(config.depth, 1))]
        self.ring = b"".join(extended)
        self.offsets = [0]
        for r in extended:
            self.offsets.append(self.offsets[-1] + len(r))
        self.n_requests = n
        # The expected answers, learnt: the first good answer to request i (checked by the
        # Decoder) is expected[i]. Once every request has one, the answers to requests
        # i..j-1 are one slice of `expected_ring`, and a batch of answers is checked with
        # one comparison. A server whose answers to the same request differ turns it off.
        self.expected: list[bytes | None] = [None] * n
        self.expected_ring: bytes | None = None
        self.expected_offsets: list[int] = []
        self.answers_vary = False

    def error(self, kind: str) -> None:
        if self.measuring:
            self.errors[kind] += 1

    def learn(self, index: int, frame: bytes) -> None:
        """``frame`` was a good answer to request ``index``."""
        known = self.expected[index]
        if known is None:
            self.expected[index] = frame
            if all(e is not None for e in self.expected):
                n = self.n_requests
                ring = [self.expected[j % n] or b"" for j in range(n + max(self.config.depth, 1))]
                self.expected_ring = b"".join(ring)
                self.expected_offsets = [0]
                for answer in ring:
                    self.expected_offsets.append(self.expected_offsets[-1] + len(answer))
        elif known != frame and not self.answers_vary:
            log.debug("answers to request %d differ: checking every answer on its own", index)
            self.answers_vary = True
            self.expected_ring = None


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connect-refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ProtocolError):
        return f"bad-response:{exc.code}"
    if isinstance(exc, OSError):
        return f"os-error:{exc.errno}"
    return type(exc).__name__


class _PipelineClient(asyncio.Protocol):
    """One long-lived connection keeping ``depth`` requests in flight."""

    def __init__(self, run: _Run, index: int) -> None:
        self.run = run
        self.index = index % run.n_requests  # next request to send, an index into the ring
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sent_at: deque[list[int]] = deque()  # [send time, requests sent then] runs
        self.in_flight = 0
        self.answer_index = self.index  # the request the next answer answers
        self.last_activity = _now()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failed = False

    def _send(self, k: int) -> None:
        run = self.run
        i = self.index
        assert self.transport is not None
        ring, offsets = run.ring, run.offsets
        if run.config.coalesce:
            self.transport.write(ring[offsets[i] : offsets[i + k]])
        else:
            write = self.transport.write
            for j in range(i, i + k):
                write(ring[offsets[j] : offsets[j + 1]])
        self.index = (i + k) % run.n_requests
        self.sent_at.append([_now(), k])
        self.in_flight += k
        if run.measuring:
            run.sent += k

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.run.clients.add(self)
        self.last_activity = _now()
        self._send(self.run.config.depth)

    def data_received(self, data: bytes) -> None:
        run = self.run
        buf = self.buf
        buf += data
        end = len(buf)
        pos = 0
        good = 0
        errors: list[str] = []
        n = run.n_requests
        ring = run.expected_ring
        if ring is not None and self.in_flight:
            # Fast path: as many whole expected answers as the buffer holds, compared at once.
            offsets = run.expected_offsets
            i = self.answer_index
            base = offsets[i]
            j = bisect_right(offsets, base + end, i, i + self.in_flight + 1) - 1
            if j > i and buf.startswith(ring[base : offsets[j]]):
                pos = offsets[j] - base
                good = j - i
                self.answer_index = j % n
        reader = run.reader
        try:
            while end - pos >= 2:
                header_length = (buf[pos] << 8) | buf[pos + 1]
                if end - pos < 2 + header_length:
                    break
                length = reader.content_length(bytes(buf[pos + 2 : pos + 2 + header_length]))
                stop = pos + 2 + header_length + length
                if stop > end:
                    break
                frame = bytes(buf[pos:stop])
                verdict = reader.verdict(frame)
                if verdict is None:
                    good += 1
                    run.learn(self.answer_index, frame)
                else:
                    errors.append(verdict)
                self.answer_index = (self.answer_index + 1) % n
                pos = stop
        except ProtocolError as exc:
            self._fail(_error_kind(exc))
            return
        if pos:
            del buf[:pos]
        count = good + len(errors)
        if not count:
            return
        now = _now()
        self.last_activity = now
        run.seen += count
        sent_at = self.sent_at
        if count > self.in_flight:
            self._fail("unsolicited-response")
            return
        self.in_flight -= count
        add = run.latency.add  # warm-up included, for the status line; the result subtracts it
        left = count
        while left:
            run_ = sent_at[0]
            if run_[1] <= left:
                add(now - run_[0], run_[1])
                left -= run_[1]
                sent_at.popleft()
            else:
                add(now - run_[0], left)
                run_[1] -= left
                left = 0
        if run.measuring:
            run.answers += good
            for kind in errors:
                run.errors[kind] += 1
        if run.sending:
            self._send(count)
        elif not self.in_flight:
            self.close()

    def _fail(self, kind: str) -> None:
        if not self.failed:
            self.failed = True
            self.run.error(kind)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self.in_flight and self.run.sending:
            self._fail("closed-by-server")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.clients.discard(self)
        if exc is not None:
            if self.run.sending:
                self._fail(_error_kind(exc))
        elif self.in_flight and self.run.sending:
            self._fail("closed-by-server")
        if not self.done.done():
            self.done.set_result(None)

    def check_timeout(self, now: int) -> None:
        if self.in_flight and now - self.last_activity > self.run.config.timeout * 1e9:
            self._fail("timeout")


async def _pipeline_worker(run: _Run, index: int) -> None:
    """Keep one connection open; reconnect when the server drops it, until the run ends."""
    loop = asyncio.get_running_loop()
    config = run.config
    while run.sending:
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: _PipelineClient(run, index), config.host, config.port),
                config.timeout,
            )
        except (OSError, TimeoutError) as exc:
            run.error("connect-" + _error_kind(exc).removeprefix("connect-"))
            await asyncio.sleep(0.05)  # back off: a refused connect must not spin the loop
            continue
        await client.done


class _OneShotClient(asyncio.Protocol):
    """The guide's client: send one request, read one response, close."""

    def __init__(self, run: _Run, request: bytes) -> None:
        self.run = run
        self.request = request
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.result: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        # A run that ends cancels the waiting worker: the connection's fate is then of no interest.
        self.result.add_done_callback(_consume_exception)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        if self.result.done() or len(buf) < 2:
            return
        header_length = (buf[0] << 8) | buf[1]
        if len(buf) < 2 + header_length:
            return
        try:
            length = self.run.reader.content_length(bytes(buf[2 : 2 + header_length]))
        except ProtocolError as exc:
            self.result.set_exception(exc)
            return
        stop = 2 + header_length + length
        if len(buf) >= stop:
            self.result.set_result(self.run.reader.verdict(bytes(buf[:stop])))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done():
            self.result.set_exception(exc or ConnectionResetError("closed before the answer"))


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def _oneshot_worker(run: _Run, index: int) -> None:
    loop = asyncio.get_running_loop()
    config = run.config
    i = index % run.n_requests
    while run.sending:
        request = config.requests[i]
        i = (i + 1) % run.n_requests
        start = _now()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(config.timeout):
                transport, client = await loop.create_connection(
                    functools.partial(_OneShotClient, run, request), config.host, config.port
                )
                verdict = await client.result
        except (OSError, TimeoutError, ProtocolError) as exc:
            run.error(_error_kind(exc))
            if isinstance(exc, ConnectionRefusedError):
                await asyncio.sleep(0.05)  # back off: a refused connect must not spin the loop
            continue
        finally:
            if transport is not None:
                transport.close()
        run.seen += 1
        run.latency.add(_now() - start)
        if run.measuring:
            run.sent += 1
            if verdict is None:
                run.answers += 1
            else:
                run.errors[verdict] += 1


async def run_load_async(
    config: LoadConfig, progress: Callable[[LoadStatus], None] | None = None
) -> LoadResult:
    """Run ``config`` on the running event loop and return what was measured."""
    run = _Run(config)
    loop = asyncio.get_running_loop()
    worker = _pipeline_worker if config.mode == "pipeline" else _oneshot_worker
    start = _now()
    window_start = start

    before_window = LatencyHistogram()

    def start_measuring() -> None:
        nonlocal window_start, before_window
        window_start = _now()
        before_window = run.latency.copy()
        run.measuring = True

    if config.warmup > 0:
        measuring_handle: asyncio.TimerHandle | None = loop.call_later(config.warmup, start_measuring)
    else:
        measuring_handle = None
        run.measuring = True
    finished = asyncio.Event()
    stop_handle = loop.call_later(config.warmup + config.duration, finished.set)
    tasks = [asyncio.create_task(worker(run, i)) for i in range(config.connections)]
    tick = min(0.25, config.status_interval)
    next_status = start + int(config.status_interval * 1e9)
    last_seen = 0
    last_latency = LatencyHistogram()
    last_status = start
    try:
        while not finished.is_set():
            now = _now()
            for client in list(run.clients):
                client.check_timeout(now)
            if progress is not None and now >= next_status:
                recent = run.latency.since(last_latency)
                seconds = (now - last_status) / 1e9
                progress(
                    LoadStatus(
                        elapsed=(now - start) / 1e9,
                        measuring=run.measuring,
                        answers=run.answers,
                        interval_rate=(run.seen - last_seen) / seconds if seconds > 0 else 0.0,
                        interval_p99_ms=recent.percentile(99) / 1e6,
                        errors=sum(run.errors.values()),
                        open_connections=len(run.clients),
                    )
                )
                last_seen = run.seen
                last_latency = run.latency.copy()
                last_status = now
                next_status = now + int(config.status_interval * 1e9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), tick)
    finally:
        end = _now()
        window = run.latency.since(before_window)
        run.sending = False
        stop_handle.cancel()
        if measuring_handle is not None:
            measuring_handle.cancel()
        run.measuring = False
        for task in tasks:
            task.cancel()
        for client in list(run.clients):
            client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    return LoadResult(
        host=config.host,
        port=config.port,
        mode=config.mode,
        connections=config.connections,
        depth=config.depth if config.mode == "pipeline" else 1,
        duration=(end - window_start) / 1e9,
        answers=run.answers,
        sent=run.sent,
        errors=dict(run.errors),
        latency=window,
    )


def run_load(
    config: LoadConfig,
    progress: Callable[[LoadStatus], None] | None = None,
    *,
    use_uvloop: bool = False,
) -> LoadResult:
    """Run ``config`` on a new event loop (uvloop's when asked and installed)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; using the default asyncio event loop")
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(run_load_async(config, progress))
    return asyncio.run(run_load_async(config, progress))


class ServerProcess:
    """A server in a child process, for measurements that must not share a core with the generator.

    ``argv`` must start a server that prints ``Listening on HOST:PORT`` as its first stdout
    line (``harness serve`` and ``benchmarks/echo_server.py`` do). :meth:`start` waits for
    that line (at most ``startup_timeout`` seconds) and returns the address. The
    child's peak resident set size is read from ``/proc`` (:meth:`peak_rss`).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        startup_timeout: float = 15.0,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.startup_timeout = startup_timeout
        self.stderr = stderr
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] | None = None

    @classmethod
    def reference(cls, *options: str, **kwargs: Any) -> ServerProcess:
        """``python -m harness serve --port 0`` plus ``options``."""
        return cls([sys.executable, "-m", "harness", "serve", "--port", "0", *options], **kwargs)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def start(self) -> tuple[str, int]:
        if self.process is not None:
            raise RuntimeError("this server process was already started: make another ServerProcess")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            preexec_fn=self.preexec_fn,  # unsafe if this process has threads: prefer an exec shim
        )
        assert self.process.stdout is not None
        line = b""
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise TimeoutError(
                        f"{self.argv!r} printed no 'Listening on' line in {self.startup_timeout}s"
                    )
                chunk = os.read(self.process.stdout.fileno(), 1)
                if not chunk:
                    try:
                        code: int | None = self.process.wait(max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:  # it closed its stdout but runs on
                        code = None
                    self.stop()
                    if code is None:
                        raise RuntimeError(f"{self.argv!r} closed its stdout before listening")
                    raise RuntimeError(f"{self.argv!r} exited with {code} before listening")
                line += chunk
        match = re.match(rb"Listening on (.+):(\d+)\s*$", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        host = match.group(1).decode().strip("[]")
        self.address = (host, int(match.group(2)))
        log.info("server pid %d listening on %s:%d", self.process.pid, *self.address)
        return self.address

    def peak_rss(self) -> int:
        """The child's peak resident set size in bytes (``VmHWM``), 0 once it is gone."""
        return _proc_status_kib(self.pid, "VmHWM") * 1024

    def rss(self) -> int:
        """The child's current resident set size in bytes (``VmRSS``)."""
        return _proc_status_kib(self.pid, "VmRSS") * 1024

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; return the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("server pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _proc_status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0


# -- the hostile mix -------------------------------------------------------------------


@dataclass(frozen=True)
class HostileMix:
    """Well-behaved clients among hostile ones (sizes of issue 7's hardening benchmark).

    - ``slow_senders`` each trickle a valid request, one byte every ``slow_interval``
      seconds: the server's idle timeout must cut them off;
    - ``huge_declarers`` each send a header declaring ``huge_length`` bytes of content,
      then start sending it: the server must refuse at once, without buffering;
    - ``non_readers`` each send search requests whose value is ``non_reader_value_size``
      bytes (the answer echoes it) as fast as the server takes them, and never read:
      the server's memory must stay bounded;
    - ``well_behaved`` clients, started once the hostile ones are in place, each make
      ``requests_per_client`` requests one after the other and check every answer
      byte for byte against :func:`harness.apps.search_app`.
    """

    slow_senders: int = 200
    slow_interval: float = 0.5
    huge_declarers: int = 50
    huge_length: int = 1 << 40
    non_readers: int = 50
    non_reader_value_size: int = 256 * 1024
    well_behaved: int = 100
    requests_per_client: int = 10
    timeout: float = 10.0  # per well-behaved request, per huge-declarer refusal
    stall_after: float = 1.0  # a non-reader whose send makes no progress this long has stalled
    settle_timeout: float = 15.0  # wait at most this long for the non-readers to stall
    slow_deadline: float = 60.0  # wait at most this long for every slow sender to be cut off
    status_interval: float = 2.0  # an INFO log line on progress this often


@dataclass
class HostileResult:
    """What :func:`run_hostile_mix` saw. Times in seconds."""

    well_behaved: int
    answered_in_full: int
    well_behaved_failures: dict[str, int]
    slow_senders: int
    slow_cut_off: int
    slow_answers: int  # requests a slow sender managed to complete (0 when the timeout works)
    slow_cut_off_after_max: float  # connection open time of the longest-lived slow sender
    huge_declarers: int
    huge_refused: int
    huge_refusal_max: float  # header sent -> error message and close, worst case
    huge_codes: dict[str, int]
    non_readers: int
    non_readers_stalled: int
    non_reader_bytes_sent: int
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    return bytes(data)


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    transport.abort()


def _error_code(data: bytes) -> str | None:
    """The ``error`` code of the first message in ``data``, if it is an error message."""
    try:
        messages = Decoder(DEFAULT_MAX_CONTENT_LENGTH).feed(data)
    except ProtocolError:
        return None
    for message in messages:
        try:
            value = message.json()
        except ProtocolError:
            continue
        if isinstance(value, dict) and "error" in value:
            return str(value["error"])
    return None


async def run_hostile_mix_async(host: str, port: int, mix: HostileMix) -> HostileResult:
    """Run ``mix`` against ``host:port``; see :class:`HostileMix`."""
    from harness.apps import search_app  # the expected answers (the application is pure)

    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = asyncio.Event()
    failures: Counter[str] = Counter()
    slow_open_times: list[float] = []
    slow_answers = 0
    huge_times: list[float] = []
    huge_codes: Counter[str] = Counter()
    stalled: list[asyncio.Event] = [asyncio.Event() for _ in range(mix.non_readers)]
    non_reader_bytes = 0
    requests = default_requests()
    slow_request = requests[0]

    async def slow_sender() -> None:
        nonlocal slow_answers
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["slow-sender-connect:" + _error_kind(exc)] += 1
            return
        opened = loop.time()
        reading = asyncio.ensure_future(_read_all(reader))
        try:
            i = 0
            while not reading.done() and not stop.is_set():
                try:
                    writer.write(slow_request[i : i + 1])
                except (ConnectionError, RuntimeError):
                    break
                i = (i + 1) % len(slow_request)
                await asyncio.wait([reading], timeout=mix.slow_interval)
            if reading.done():
                slow_open_times.append(loop.time() - opened)
                with contextlib.suppress(ProtocolError):
                    answers = Decoder(DEFAULT_MAX_CONTENT_LENGTH).feed(reading.result())
                    slow_answers += sum(1 for m in answers if _error_code(m.encode()) is None)
        finally:
            reading.cancel()
            _abort(writer)

    async def huge_declarer() -> None:
        header = (
            f'{{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
            f'"content-encoding": "binary", "content-length": {mix.huge_length}}}'
        ).encode()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["huge-declarer-connect:" + _error_kind(exc)] += 1
            return
        try:
            writer.write(len(header).to_bytes(2, "big") + header)
            sent = loop.time()
            with contextlib.suppress(ConnectionError):
                writer.write(b"\x00" * 65536)  # the start of the "content"
            try:
                data = await asyncio.wait_for(_read_all(reader), mix.timeout)
            except TimeoutError:
                huge_codes["not refused"] += 1
                return
            huge_times.append(loop.time() - sent)
            huge_codes[_error_code(data) or "closed without an error message"] += 1
        finally:
            _abort(writer)

    async def non_reader(index: int) -> None:
        nonlocal non_reader_bytes
        value = "x" * mix.non_reader_value_size
        big = Message.from_json({"action": "search", "value": value}).encode()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["non-reader-connect:" + _error_kind(exc)] += 1
            stalled[index].set()
            return
        try:
            while not stop.is_set():
                writer.write(big)
                try:
                    await asyncio.wait_for(writer.drain(), mix.stall_after)
                except TimeoutError:
                    break  # the server stopped reading us: backpressure works
                except ConnectionError:
                    break
                non_reader_bytes += len(big)
            stalled[index].set()
            await stop.wait()
        finally:
            stalled[index].set()
            _abort(writer)

    async def well_behaved(index: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["connect:" + _error_kind(exc)] += 1
            return
        decoder = Decoder(DEFAULT_MAX_CONTENT_LENGTH)
        try:
            for k in range(mix.requests_per_client):
                raw = requests[(index + k) % len(requests)]
                (request,) = Decoder(DEFAULT_MAX_CONTENT_LENGTH).feed(raw)
                expected = search_app(request)
                writer.write(raw)
                answers: list[Message] = []
                deadline = loop.time() + mix.timeout
                while not answers:
                    chunk = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
                    if not chunk:
                        failures["closed-by-server"] += 1
                        return
                    answers = decoder.feed(chunk)
                if answers != [expected]:
                    failures["wrong-answer"] += 1
                    return
            well_done.append(index)
        except (OSError, TimeoutError, ProtocolError) as exc:
            failures[_error_kind(exc)] += 1
        finally:
            _abort(writer)

    well_done: list[int] = []
    slow_tasks = [asyncio.ensure_future(slow_sender()) for _ in range(mix.slow_senders)]
    huge_tasks = [asyncio.ensure_future(huge_declarer()) for _ in range(mix.huge_declarers)]
    reader_tasks = [asyncio.ensure_future(non_reader(i)) for i in range(mix.non_readers)]

    async def report() -> None:  # a status line every status_interval, for long mixes
        while True:
            await asyncio.sleep(mix.status_interval)
            log.info(
                "%5.1f s: well-behaved %d/%d done; slow senders cut off %d/%d; huge refused %d/%d; "
                "non-readers stalled %d/%d",
                loop.time() - started, len(well_done), mix.well_behaved, len(slow_open_times),
                mix.slow_senders, len(huge_times), mix.huge_declarers,
                sum(e.is_set() for e in stalled), mix.non_readers,
            )

    reporter = asyncio.ensure_future(report())
    try:
        if stalled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in stalled)), mix.settle_timeout)
        log.info(
            "hostile clients in place after %.1f s; starting %d well-behaved clients",
            loop.time() - started, mix.well_behaved,
        )
        await asyncio.gather(*(well_behaved(i) for i in range(mix.well_behaved)))
        if huge_tasks:
            await asyncio.wait(huge_tasks, timeout=mix.timeout)
        if slow_tasks:
            await asyncio.wait(slow_tasks, timeout=max(0.0, started + mix.slow_deadline - loop.time()))
    finally:
        stop.set()
        for task in [*slow_tasks, *huge_tasks, *reader_tasks, reporter]:
            task.cancel()
        await asyncio.gather(*slow_tasks, *huge_tasks, *reader_tasks, reporter, return_exceptions=True)
    return HostileResult(
        well_behaved=mix.well_behaved,
        answered_in_full=len(well_done),
        well_behaved_failures=dict(failures),
        slow_senders=mix.slow_senders,
        slow_cut_off=len(slow_open_times),
        slow_answers=slow_answers,
        slow_cut_off_after_max=max(slow_open_times, default=0.0),
        huge_declarers=mix.huge_declarers,
        huge_refused=sum(n for code, n in huge_codes.items() if code not in ("not refused",)),
        huge_refusal_max=max(huge_times, default=0.0),
        huge_codes=dict(huge_codes),
        non_readers=mix.non_readers,
        non_readers_stalled=sum(e.is_set() for e in stalled),
        non_reader_bytes_sent=non_reader_bytes,
        elapsed=loop.time() - started,
    )


def run_hostile_mix(host: str, port: int, mix: HostileMix) -> HostileResult:
    """:func:`run_hostile_mix_async` on a new event loop."""
    return asyncio.run(run_hostile_mix_async(host, port, mix))
