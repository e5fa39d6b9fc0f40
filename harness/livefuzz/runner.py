"""Run a program against a live server and judge it with the oracle.

:class:`Runner` interprets the steps of a program (:mod:`harness.livefuzz.program`)
over real sockets, one thread, every wait bounded by ``timeout``; each connection
has a :class:`~harness.livefuzz.oracle.ConnectionOracle` fed the same bytes. While
sending it also reads, so a server that answers while it still receives never
deadlocks the fuzzer. The first disagreement ends the case with a
:class:`CaseResult` whose ``failure`` says what went wrong and at which step; at
the end every open connection is read and judged, a fresh connection must still
be served and, when the server runs under a :class:`~harness.supervise.ServerUnderTest`,
it must not have died, printed a traceback or grown its memory past the bound.

Every chunk sent and received is recorded (:class:`harness.probe.wire.Transcript`),
so that a failure can be written out as a capture with its real chunking.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from harness.apps import App
from harness.errors import ProtocolError
from harness.frames import Frame, FrameReader
from harness.livefuzz.oracle import MAX_ANSWER_CONTENT, ConnectionOracle, Expected, compare, frames_with_raw
from harness.livefuzz.program import (
    AwaitClose,
    Close,
    Flood,
    HalfClose,
    Idle,
    LargeRequests,
    Open,
    Read,
    Send,
    Step,
)
from harness.message import Message
from harness.probe.checks import error_code
from harness.probe.profiles import Profile
from harness.probe.wire import Chunk, Transcript, cork
from harness.supervise import RssSample, ServerUnderTest

__all__ = ["CaseResult", "Runner"]

log = logging.getLogger(__name__)

_RECV = 65536
#: How long a closing connection may take to send its FIN once its answers are in.
_CLOSE_GRACE = 0.5
#: A flooding client whose sends make no progress for this long is stopped by backpressure (a
#: server without it may stall a moment while it answers its backlog, then only read).
_FLOOD_BLOCKED = 1.0
#: The error code a server may send before it closes an idle connection.
_IDLE_TIMEOUT = "idle-timeout"


class _Failed(Exception):
    def __init__(self, message: str, step: int | None) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class CaseResult:
    """What one run of a program found."""

    failure: str | None = None
    step: int | None = None  # index of the step where it showed (None: at the end)
    transcripts: list[Transcript] = field(default_factory=list)
    connections: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    #: Behaviour seen, for feedback: error codes, close kinds, answer shapes.
    features: set[str] = field(default_factory=set)
    seconds: float = 0.0


class _Conn:
    """One live connection, its recorded chunks and its oracle."""

    def __init__(
        self, sock: socket.socket, transcript: Transcript, oracle: ConnectionOracle, t0: float
    ) -> None:
        self.sock = sock
        self.transcript = transcript
        self.oracle = oracle
        self.t0 = t0
        self.reader = FrameReader(MAX_ANSWER_CONTENT)
        self.raw = bytearray()
        self.got: list[tuple[Message, bytes]] = []
        self.eof = False
        self.reset = False
        self.malformed: ProtocolError | None = None
        self.half_closed = False
        self.closed = False  # by us
        self.settled = False  # the server closed where the profile accepts it: no more judging
        self.sent_after_close = False

    @property
    def ended(self) -> bool:
        return self.eof or self.reset or self.closed

    def _record(self, outgoing: bool, data: bytes) -> None:
        self.transcript.chunks.append(Chunk(outgoing, data, time.monotonic() - self.t0))

    def on_readable(self) -> int:
        try:
            data = self.sock.recv(_RECV)
        except BlockingIOError:
            return 0
        except OSError:
            self.reset = self.transcript.reset = True
            return 0
        if not data:
            self.eof = self.transcript.server_closed = True
            return 0
        self._record(False, data)
        self.raw += data
        if self.malformed is None:
            try:
                frames = self.reader.feed(data)
            except ProtocolError as error:
                frames = error.frames
                self.malformed = error
            end = self.reader.offset if self.malformed is None else len(self.raw)
            raws = frames_with_raw(frames, bytes(self.raw), end)
            self.got.extend((Message.from_frame(f), r) for f, r in zip(frames, raws, strict=True))
        return len(data)

    def pump(self, timeout: float) -> int:
        """Read whatever arrives within ``timeout`` (0: what is there now)."""
        if self.ended:
            return 0
        readable, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        return self.on_readable() if readable else 0

    def send(self, data: bytes, deadline: float) -> int:
        """Send ``data`` as one chunk, reading meanwhile; returns bytes sent (less when it broke)."""
        view = memoryview(data)
        sent = 0
        while view and not self.reset:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Failed("sending blocked: the server stopped reading, and answers nothing", None)
            readable, writable, _ = select.select(
                [] if self.ended else [self.sock], [self.sock], [], min(left, 0.1)
            )
            if readable:
                self.on_readable()
            if writable:
                try:
                    n = self.sock.send(view)
                except BlockingIOError:
                    continue
                except OSError:
                    self.reset = self.transcript.reset = True
                    break
                self._record(True, bytes(view[:n]))
                view = view[n:]
                sent += n
        return sent


class Runner:
    """Runs programs against ``host:port`` (optionally a supervised server) with one oracle setup."""

    def __init__(
        self,
        host: str,
        port: int,
        app: App,
        profile: Profile,
        *,
        timeout: float = 2.0,
        exact: bool = False,
        server: ServerUnderTest | None = None,
        rss_limit: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.app = app
        self.profile = profile
        self.timeout = timeout
        self.exact = exact
        self.server = server
        self.rss_limit = rss_limit if rss_limit is not None else (server.rss_limit if server else 0)
        self._baseline_rss: int | None = None

    # -- one case ----------------------------------------------------------------------

    def run(self, program: Sequence[Step]) -> CaseResult:
        result = CaseResult()
        started = time.monotonic()
        server = self.server
        if server is not None and not server.alive:
            log.info("the server is not running: restarting it")
            server.restart()
            self.port = server.port
        mark = server.mark() if server is not None else None
        # RSS sampled during the case (and the kernel's peak counter): a server that balloons
        # and frees within one case is caught, not only one that keeps what it took.
        sampler = server.rss_sampler().start() if server is not None and server.alive else None
        conns: dict[int, _Conn] = {}
        try:
            try:
                for index, step in enumerate(program):
                    following = program[index + 1] if index + 1 < len(program) else None
                    self._step(index, step, conns, result, started, following)
                for number in sorted(conns):
                    self._judge(conns[number], wait=True, step=None)
                self._fresh_connection(result, started)
            finally:
                for conn in conns.values():
                    with contextlib.suppress(OSError):
                        conn.sock.close()
        except _Failed as failed:
            result.failure, result.step = str(failed), failed.step
        except OSError as exc:  # connect refused, unreachable: the server is gone
            result.failure, result.step = f"cannot connect to the server: {exc.strerror or exc}", None
        peak = sampler.stop() if sampler is not None else None
        if server is not None and mark is not None:
            problem = self._observe(server, mark, peak)
            if problem is not None and (result.failure is None or not server.alive):
                result.failure = problem if result.failure is None else f"{problem} ({result.failure})"
                result.step = None
        for conn in conns.values():
            result.transcripts.append(conn.transcript)
            result.bytes_received += len(conn.raw)
            self._features(conn, result.features)
        result.seconds = time.monotonic() - started
        return result

    def _observe(self, server: ServerUnderTest, mark: object, sample: RssSample | None) -> str | None:
        from harness.supervise import Mark

        assert isinstance(mark, Mark)
        seen = server.observe(mark, wait=0.2 if not server.alive else 0.0)
        if seen.problems and seen.death is None:
            # A traceback is often the server's last words: give it a moment to die, so
            # that the death is reported and the next case starts a fresh process.
            seen = server.observe(mark, wait=0.5)
        if seen.problems:
            return "; ".join(seen.problems)
        rss = server.rss()
        if self._baseline_rss is None:
            # the first case's start (before it sent anything), else its end
            self._baseline_rss = sample.baseline if sample is not None and sample.baseline else rss
        if not rss and sample is None:
            return None
        limit = self.rss_limit >> 20
        if sample is not None and sample.peak - self._baseline_rss > self.rss_limit:
            growth = (sample.peak - self._baseline_rss) / (1 << 20)
            now = (rss - self._baseline_rss) / (1 << 20) if rss else 0.0
            return (
                f"the server's RSS peaked {growth:.1f} MiB above its size when fuzzing started, during "
                f"this case ({now:+.1f} MiB after it; limit {limit} MiB)"
            )
        if rss and rss - self._baseline_rss > self.rss_limit:
            growth = (rss - self._baseline_rss) / (1 << 20)
            return f"the server's RSS grew by {growth:.1f} MiB since fuzzing started (limit {limit} MiB)"
        return None

    def _connect(
        self, number: int, conns: dict[int, _Conn], result: CaseResult, t0: float, rcvbuf: int = 0
    ) -> _Conn:
        conn = conns.get(number)
        if conn is not None:
            return conn
        if rcvbuf:
            sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
            sock.settimeout(self.timeout)
            try:
                sock.connect((self.host, self.port))
            except OSError:
                sock.close()
                raise
        else:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        local, peer = sock.getsockname(), sock.getpeername()
        transcript = Transcript(f"connection {number}", (local[0], local[1]), (peer[0], peer[1]))
        conn = _Conn(sock, transcript, ConnectionOracle(self.app, self.profile), t0)
        conns[number] = conn
        result.connections += 1
        return conn

    def _step(
        self,
        index: int,
        step: Step,
        conns: dict[int, _Conn],
        result: CaseResult,
        t0: float,
        following: Step | None = None,
    ) -> None:
        if isinstance(step, Idle):
            time.sleep(step.seconds)
            return
        if isinstance(step, Open):
            self._connect(step.conn, conns, result, t0)
            return
        if isinstance(step, LargeRequests):
            self._large_requests(index, step, result, t0)
            return
        conn = self._connect(step.conn, conns, result, t0, step.rcvbuf if isinstance(step, Flood) else 0)
        if conn.closed:
            return  # a step on a connection the program closed: nothing to do
        if isinstance(step, Send):
            if conn.half_closed:
                return
            if conn.oracle.must_close or conn.ended:
                conn.sent_after_close = True
            deadline = time.monotonic() + self.timeout
            chunks = step.chunks()
            # A half-close right after: the last chunk and the FIN leave together (TCP_CORK, flushed
            # by the shutdown), as the probe's half-close sends them, so that a server that stops at
            # the FIN before writing its answers fails every time, not only when the FIN is late.
            fin_follows = isinstance(following, HalfClose) and following.conn == step.conn
            for number, chunk in enumerate(chunks):
                if number and step.pause:
                    time.sleep(step.pause)
                if fin_follows and number == len(chunks) - 1:
                    cork(conn.sock)
                sent = conn.send(chunk, deadline) if not conn.reset else 0
                result.bytes_sent += sent
                conn.oracle.receive(chunk)
            # Read what is there, judge nothing: whether an answer arrived this soon is timing,
            # and a verdict must not depend on timing (the same seed must give the same run).
            # The answers are judged at the next read step or at the end of the program.
            while conn.pump(0):
                pass
        elif isinstance(step, HalfClose):
            if conn.half_closed:
                return
            conn.half_closed = conn.transcript.client_shutdown = True
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.oracle.receive_eof()
        elif isinstance(step, Close):
            # answers not read by then are not judged (which of them had arrived is timing)
            conn.closed = conn.transcript.client_shutdown = True
            with contextlib.suppress(OSError):
                conn.sock.close()
        elif isinstance(step, Read):
            self._judge(conn, wait=True, step=index)
        elif isinstance(step, AwaitClose):
            self._await_close(index, step, conn)
        elif isinstance(step, Flood):
            self._flood(step, conn, result)

    # -- the sentinels' steps ----------------------------------------------------------

    def _await_close(self, index: int, step: AwaitClose, conn: _Conn) -> None:
        """The server must close ``conn`` within ``step.seconds`` (docs/PROTOCOL.md#l2): what it
        owed first is judged, then only the error message ``idle-timeout`` may come."""
        if conn.oracle.judged:
            self._judge(conn, wait=True, step=index)
        if conn.settled or conn.closed:
            return
        owed = len(conn.oracle.expected)
        end = time.monotonic() + step.seconds
        while not conn.ended and conn.malformed is None:
            left = end - time.monotonic()
            if left <= 0:
                break
            conn.pump(left)
        name = conn.transcript.label
        if conn.malformed is not None:
            raise _Failed(f"{name}: the server's bytes break the protocol: {conn.malformed}", index)
        for message, _ in conn.got[owed:]:
            if error_code(message) != _IDLE_TIMEOUT:
                raise _Failed(
                    f"{name}: while it was idle, the server sent {_show(message)} (only the error "
                    f"message {_IDLE_TIMEOUT!r} may come before the close)",
                    index,
                )
        if not conn.ended:
            raise _Failed(
                f"{name}: idle for {step.seconds:g} s and still open: no idle timeout within that "
                "bound (docs/PROTOCOL.md#l2)",
                index,
            )
        conn.settled = True

    def _flood(self, step: Flood, conn: _Conn, result: CaseResult) -> None:
        """Send search requests on ``conn`` and read nothing until the server stops reading (no
        progress for ``_FLOOD_BLOCKED`` seconds), closes, ``step.size`` bytes are sent or
        ``step.seconds`` pass; then abort it. Not judged here: the memory bound judges."""
        block = Message.from_json({"action": "search", "value": "needle"}).encode() * 1000
        sock = conn.sock
        started = time.monotonic()
        stalled_since = started
        sent = 0
        with contextlib.suppress(OSError):
            while sent < step.size and time.monotonic() - started < step.seconds:
                _, writable, _ = select.select([], [sock], [], 0.05)
                now = time.monotonic()
                if not writable:
                    if now - stalled_since > _FLOOD_BLOCKED:
                        break  # backpressure: the server stopped reading
                    continue
                try:
                    n = sock.send(block[: step.size - sent])
                except BlockingIOError:
                    continue
                sent += n
                stalled_since = now
        result.bytes_sent += sent
        # abort (RST): the server's buffers for it are freed at once
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            sock.close()
        conn.closed = conn.transcript.client_shutdown = True
        log.info("flood: %d bytes sent in %.1f s", sent, time.monotonic() - started)

    def _large_requests(self, index: int, step: LargeRequests, result: CaseResult, t0: float) -> None:
        """``step.count`` binary requests of ``step.size`` bytes, a fresh connection each, each
        answer judged; the connections' chunks are not kept (they would hold all the bytes)."""
        content = (bytes(range(256)) * (step.size // 256 + 1))[: step.size]
        data = Message.from_bytes(
            content, content_type="binary/custom-client-binary-type", encoding="binary"
        ).encode()
        for number in range(step.count):
            scratch: dict[int, _Conn] = {}
            conn = self._connect(number, scratch, result, t0)
            conn.transcript.label = f"large request {number + 1} of {step.count}"
            try:
                result.bytes_sent += conn.send(data, time.monotonic() + self.timeout)
                conn.oracle.receive(data)
                try:
                    self._judge(conn, wait=True, step=index)
                except _Failed:
                    # a content limit under the request's size is the server's choice (L1): the
                    # sentinel stops there, and judges the memory of what was sent so far
                    if conn.got and error_code(conn.got[0][0]) == "content-too-large":
                        log.info("large requests: content-too-large at %d bytes; stopped", step.size)
                        return
                    raise
            finally:
                result.bytes_received += len(conn.raw)
                with contextlib.suppress(OSError):
                    conn.sock.close()

    # -- the verdict -------------------------------------------------------------------

    def _judge(self, conn: _Conn, *, wait: bool, step: int | None) -> None:
        """Compare what ``conn`` received with what the oracle owes; with ``wait``, wait
        (bounded) for the answers owed and for the close owed."""
        oracle = conn.oracle
        if conn.settled or conn.closed:
            return
        want = oracle.judged
        deadline = time.monotonic() + self.timeout
        if wait:
            while len(conn.got) < want and not conn.ended and conn.malformed is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                conn.pump(left)
        else:
            while conn.pump(0):
                pass
        name = conn.transcript.label
        for number, (message, raw) in enumerate(conn.got[:want]):
            why = compare(message, raw, oracle.expected[number], exact=self.exact)
            if why is not None:
                raise _Failed(f"{name}, answer {number + 1}: {why}", step)
        if conn.malformed is not None and len(conn.got) <= want:
            raise _Failed(f"{name}: the server's bytes break the protocol: {conn.malformed}", step)
        if oracle.unjudged_from is not None and len(conn.got) >= want:
            conn.settled = True  # the profile accepts anything from here on
            return
        if len(conn.got) > len(oracle.expected):
            extra = conn.got[len(oracle.expected)][0]
            raise _Failed(
                f"{name}: {len(conn.got)} answers, the reference answers {len(oracle.expected)}; "
                f"the extra one: {_show(extra)}",
                step,
            )
        answered = len(conn.got)
        if answered < want:
            if conn.ended and (oracle.close_accepted(answered) or self._lost_to_reset(conn)):
                conn.settled = True
                return
            missing = oracle.expected[answered].message
            owed = f"answer {answered + 1} of {want} ({_show(missing)})"
            if conn.eof or conn.reset:
                how = "reset" if conn.reset and not conn.eof else "closed"
                raise _Failed(f"{name}: the server {how} the connection before {owed}", step)
            if wait:
                raise _Failed(f"{name}: no {owed} within {self.timeout:g} s", step)
            return
        # every answer owed is in
        if (conn.eof or conn.reset) and not oracle.must_close:
            if oracle.close_accepted(answered):
                conn.settled = True
                return
            how = "reset" if conn.reset and not conn.eof else "closed"
            raise _Failed(
                f"{name}: the server {how} the connection after {answered} answer(s); it must stay open "
                "(docs/PROTOCOL.md#s3)",
                step,
            )
        if oracle.must_close and wait and not conn.ended:
            grace = time.monotonic() + max(_CLOSE_GRACE, self.timeout)
            while not conn.ended and time.monotonic() < grace:
                conn.pump(grace - time.monotonic())
            if len(conn.got) > answered:
                self._judge(conn, wait=False, step=step)
                return
            if not conn.ended:
                why = f"the error {oracle.error!r}" if oracle.error else "the half-close"
                raise _Failed(
                    f"{name}: after {why} the server must close the connection; it is still open "
                    f"{max(_CLOSE_GRACE, self.timeout):g} s later (docs/PROTOCOL.md#s2)",
                    step,
                )

    @staticmethod
    def _lost_to_reset(conn: _Conn) -> bool:
        """Answers the server sent before closing may be lost to the reset our later sends
        provoke: a reset after the reference closed is accepted when we kept sending."""
        return conn.reset and not conn.eof and conn.oracle.must_close and conn.sent_after_close

    def _fresh_connection(self, result: CaseResult, t0: float) -> None:
        """A fresh connection must still be served: one request, its answer within the bound."""
        request = Message.from_json({"action": "search", "value": "morpheus"})
        want = self.app(request)
        sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request.encode())
            reader = FrameReader(MAX_ANSWER_CONTENT)
            deadline = time.monotonic() + self.timeout
            frames: list[Frame] = []
            while not frames:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Failed(f"a fresh connection is not answered within {self.timeout:g} s", None)
                sock.settimeout(left)
                try:
                    data = sock.recv(_RECV)
                except TimeoutError:
                    continue
                if not data:
                    raise _Failed("a fresh connection is closed without an answer", None)
                frames = reader.feed(data)
        except ProtocolError as error:
            raise _Failed(f"a fresh connection gets bytes that break the protocol: {error}", None) from None
        except ConnectionError as exc:
            raise _Failed(f"a fresh connection is reset: {exc.strerror or exc}", None) from None
        finally:
            sock.close()
        got = Message.from_frame(frames[0])
        why = compare(got, b"", _expected(want), exact=False)
        if why is not None:
            raise _Failed(f"a fresh connection's answer is wrong: {why}", None)

    @staticmethod
    def _features(conn: _Conn, features: set[str]) -> None:
        oracle = conn.oracle
        for expected in oracle.expected:
            features.add(f"expect:{expected.code or expected.message.content_type}")
        if conn.closed:
            # closed by the program without waiting: what had arrived by then is timing,
            # and feedback must not depend on timing (the same seed must give the same run)
            features.add(f"end:dropped:{'close' if oracle.must_close else 'open'}")
        else:
            # closed or open, not how: whether a close arrives as a FIN or a reset is timing
            end = "closed" if conn.reset or conn.eof else "open"
            features.add(f"end:{end}:{'close' if oracle.must_close else 'open'}")
            features.add(f"answers:{min(len(conn.got), 4)}")
            for message, _ in conn.got:
                code = error_code(message)
                features.add(f"got:{code}" if code else f"got:{message.content_type}")
        if conn.half_closed:
            features.add("half-closed")


def _expected(message: Message) -> Expected:
    return Expected(message, message.encode())


def _show(message: Message) -> str:
    code = error_code(message)
    if code is not None:
        return f"the error message {code!r}"
    if message.is_json:
        try:
            return repr(message.json())[:80]
        except Exception:  # a broken answer: show its bytes
            return repr(message.content[:60])
    return f"{message.content_type} {message.content[:40]!r}"
