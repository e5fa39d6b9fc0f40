"""The probe's transport: blocking TCP connections that record every chunk.

Each :class:`WireConnection` remembers the chunks it handed to ``send`` and the
chunks ``recv`` returned, in order and with their real boundaries, so that a
failing check can be written out as a capture showing exactly what crossed the
wire. Every wait is bounded by the owning :class:`Recorder`'s deadline: a server
that never answers turns into a ``timeout`` outcome, never a hung probe.

Responses are decoded with the project's one codec (:class:`harness.Decoder`).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.errors import ProtocolError
from harness.frames import Frame, FrameReader
from harness.message import Message

__all__ = [
    "CheckTimeout",
    "Chunk",
    "End",
    "RawReading",
    "Reading",
    "Recorder",
    "Transcript",
    "WireConnection",
    "cork",
]

log = logging.getLogger(__name__)


def cork(sock: socket.socket) -> None:
    """Hold what is sent next on ``sock`` until it is shut down (or uncorked): Linux's
    TCP_CORK, so that the last bytes and the FIN leave in one segment. Elsewhere nothing
    (the bytes and the FIN may then leave apart)."""
    option = getattr(socket, "TCP_CORK", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, 1)


_RECV_SIZE = 65536
#: Response content above this is treated as a malformed answer (no probe answer is anywhere near).
_MAX_RESPONSE_CONTENT = 1 << 20


class CheckTimeout(Exception):
    """The check's own time bound ran out while waiting on the server."""


class End(enum.Enum):
    """How a read stopped."""

    COMPLETE = "complete"  # the messages asked for arrived
    EOF = "eof"  # the server closed its side cleanly (FIN)
    RESET = "reset"  # the connection was reset (RST) or otherwise broke
    TIMEOUT = "timeout"  # nothing more arrived before the bound
    MALFORMED = "malformed"  # the server's bytes broke the protocol


@dataclass(frozen=True)
class Chunk:
    """One ``send`` (``outgoing``) or one ``recv`` result, at ``time`` seconds into the check."""

    outgoing: bool
    data: bytes
    time: float


@dataclass
class Transcript:
    """Everything one connection sent and received, chunk by chunk."""

    label: str
    client: tuple[str, int] = ("127.0.0.1", 0)
    server: tuple[str, int] = ("127.0.0.1", 0)
    chunks: list[Chunk] = field(default_factory=list)
    client_shutdown: bool = False  # the probe half-closed or closed its side
    server_closed: bool = False  # a clean EOF came from the server
    reset: bool = False

    @property
    def sent(self) -> bytes:
        return b"".join(c.data for c in self.chunks if c.outgoing)

    @property
    def received(self) -> bytes:
        return b"".join(c.data for c in self.chunks if not c.outgoing)


@dataclass
class Reading:
    """What a read produced: the frames read and why it stopped.

    The server's bytes are read with the frame layer (:class:`FrameReader`);
    :attr:`messages` gives the same frames as :class:`Message` objects, which
    is how the checks compare them with the expected answers.
    """

    frames: list[Frame]
    end: End
    error: ProtocolError | None = None
    raw: bytes = b""

    @functools.cached_property
    def messages(self) -> list[Message]:
        return [Message.from_frame(frame) for frame in self.frames]

    def describe(self) -> str:
        got = f"{len(self.messages)} message(s)"
        if self.end is End.MALFORMED:
            return f"{got}, then bytes that break the protocol ({self.error})"
        return {
            End.COMPLETE: got,
            End.EOF: f"{got}, then the server closed the connection",
            End.RESET: f"{got}, then the connection was reset",
            End.TIMEOUT: f"{got}, then silence until the time bound",
        }[self.end]


@dataclass(frozen=True)
class RawReading:
    """What a raw read produced (no framing: a byte-echo server's bytes) and why it stopped."""

    data: bytes
    end: End


class Recorder:
    """Opens the connections of one check and keeps their transcripts.

    ``deadline`` (a :func:`time.monotonic` value) bounds every operation of
    every connection; :meth:`abort_all` unblocks a check from another thread.
    """

    def __init__(self, host: str, port: int, deadline: float) -> None:
        self.host = host
        self.port = port
        self.deadline = deadline
        self.started = time.monotonic()
        self.transcripts: list[Transcript] = []
        self._connections: list[WireConnection] = []
        self._lock = threading.Lock()
        self._aborted = False

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self._aborted:
            raise CheckTimeout("the check's time bound ran out")
        return left

    def connect(
        self, label: str = "", timeout: float | None = None, *, rcvbuf: int | None = None
    ) -> WireConnection:
        """A new connection to the target (TCP_NODELAY, so each send leaves as its own segment).

        ``rcvbuf`` sets ``SO_RCVBUF`` before connecting (so the window the server sees is
        small from the start): a client that never reads then holds little of its answers.
        """
        with self._lock:
            label = label or f"connection {len(self.transcripts) + 1}"
        bound = self.remaining() if timeout is None else min(timeout, self.remaining())
        if rcvbuf is None:
            sock = socket.create_connection((self.host, self.port), timeout=bound)
        else:
            sock = _connect_with_rcvbuf(self.host, self.port, bound, rcvbuf)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local = sock.getsockname()
            peer = sock.getpeername()  # ENOTCONN when the server reset it already
        except OSError:
            sock.close()
            raise
        transcript = Transcript(label, (local[0], local[1]), (peer[0], peer[1]))
        connection = WireConnection(self, sock, transcript)
        with self._lock:
            self.transcripts.append(transcript)
            self._connections.append(connection)
            if self._aborted:
                connection.close()
        return connection

    def abort_all(self) -> None:
        """Close every connection (from any thread): blocked calls return at once."""
        with self._lock:
            self._aborted = True
            connections = list(self._connections)
        for connection in connections:
            connection.interrupt()

    def close_all(self) -> None:
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.close()

    def elapsed(self) -> float:
        return time.monotonic() - self.started


class WireConnection:
    """One recorded TCP connection to the target."""

    def __init__(self, recorder: Recorder, sock: socket.socket, transcript: Transcript) -> None:
        self._recorder = recorder
        self._sock = sock
        self.transcript = transcript
        self._reader = FrameReader(_MAX_RESPONSE_CONTENT)
        self._pending: list[Frame] = []
        self._raw_pending = bytearray()
        self._eof = False
        self._broken = False
        self._closed = False

    # -- sending ------------------------------------------------------------

    def send(self, data: bytes, timeout: float | None = None) -> bool:
        """Send ``data`` as one chunk; False when the connection broke (reset, closed).

        Raises :class:`CheckTimeout` when the server stops reading and the
        bound runs out before the bytes are accepted by the kernel.
        """
        if not data:
            return True
        view = memoryview(data)
        end = None if timeout is None else time.monotonic() + timeout
        while view:
            left = self._recorder.remaining()
            if end is not None:
                left = min(left, end - time.monotonic())
                if left <= 0:
                    raise CheckTimeout("sending blocked: the server stopped reading")
            self._sock.settimeout(left)
            try:
                n = self._sock.send(view)
            except TimeoutError:
                raise CheckTimeout("sending blocked: the server stopped reading") from None
            except OSError as exc:
                log.debug("%s: send failed: %s", self.transcript.label, exc)
                self._broken = True
                self.transcript.reset = True
                return False
            self._record(True, bytes(view[:n]))
            view = view[n:]
        return True

    def send_chunks(self, chunks: Iterable[bytes], pause: float = 0.0) -> bool:
        """Send each chunk with its own ``send``, pausing between them so the server
        sees them as separate reads; False when the connection broke."""
        first = True
        for chunk in chunks:
            if not chunk:
                continue
            if not first and pause:
                time.sleep(min(pause, self._recorder.remaining()))
            first = False
            if not self.send(chunk):
                return False
        return True

    def send_then_shutdown(self, data: bytes) -> bool:
        """``data`` and the FIN together, in one segment where the kernel allows (TCP_CORK):
        a peer whose last request and half-close arrive at once, which a server that stops at
        the FIN before writing its answers gets wrong every time, not only when timing helps."""
        cork(self._sock)
        sent = self.send(data)
        self.shutdown_write()  # shutting down flushes the corked data with the FIN
        return sent

    def shutdown_write(self) -> None:
        """Half-close: send FIN, keep reading."""
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            log.debug("%s: shutdown failed: %s", self.transcript.label, exc)
        self.transcript.client_shutdown = True

    def abort(self) -> None:
        """Close with a reset (SO_LINGER 0)."""
        with contextlib.suppress(OSError):
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def interrupt(self) -> None:
        """Shut both directions down, then close: wakes a ``recv`` blocked in another thread
        (a plain ``close`` does not on Linux)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.transcript.client_shutdown = True
        self._sock.close()

    # -- receiving ----------------------------------------------------------

    def read_messages(self, count: int, timeout: float | None = None) -> Reading:
        """Read until ``count`` messages arrived (or EOF, reset, malformed bytes, timeout)."""
        return self._read(count, timeout)

    def read_until_close(self, timeout: float | None = None) -> Reading:
        """Read every message until the server closes (or resets, or the bound runs out)."""
        return self._read(None, timeout)

    def _read(self, count: int | None, timeout: float | None) -> Reading:
        got = self._pending
        self._pending = []
        raw = bytearray()
        end_at = None if timeout is None else time.monotonic() + timeout
        while count is None or len(got) < count:
            if self._eof:
                return self._finish(got, count, End.EOF, raw)
            if self._broken or self._closed:
                return self._finish(got, count, End.RESET, raw)
            left = self.deadline_left(end_at)
            if left <= 0:
                return self._finish(got, count, End.TIMEOUT, raw)
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(_RECV_SIZE)
            except TimeoutError:
                return self._finish(got, count, End.TIMEOUT, raw)
            except OSError as exc:
                log.debug("%s: recv failed: %s", self.transcript.label, exc)
                self._broken = True
                self.transcript.reset = True
                continue
            if not data:
                self._eof = True
                self.transcript.server_closed = True
                continue
            self._record(False, data)
            raw += data
            try:
                got.extend(self._reader.feed(data))
            except ProtocolError as error:
                got.extend(error.frames)
                return Reading(got, End.MALFORMED, error, bytes(raw))
        if count is not None and len(got) > count:
            self._pending = got[count:]
            got = got[:count]
        return Reading(got, End.COMPLETE, None, bytes(raw))

    def read_bytes(self, count: int | None, timeout: float | None = None) -> RawReading:
        """Read raw bytes, no framing: until ``count`` bytes arrived (``None``: until the
        server closes), or EOF, reset, or the bound. Bytes past ``count`` wait for the next call."""
        got = self._raw_pending
        self._raw_pending = bytearray()
        end_at = None if timeout is None else time.monotonic() + timeout
        end = End.COMPLETE
        while count is None or len(got) < count:
            if self._eof:
                end = End.EOF
                break
            if self._broken or self._closed:
                end = End.RESET
                break
            left = self.deadline_left(end_at)
            if left <= 0:
                end = End.TIMEOUT
                break
            self._sock.settimeout(left)
            try:
                data = self._sock.recv(_RECV_SIZE)
            except TimeoutError:
                end = End.TIMEOUT
                break
            except OSError as exc:
                log.debug("%s: recv failed: %s", self.transcript.label, exc)
                self._broken = True
                self.transcript.reset = True
                continue
            if not data:
                self._eof = True
                self.transcript.server_closed = True
                continue
            self._record(False, data)
            got += data
        if count is not None and len(got) >= count:
            self._raw_pending = got[count:]
            return RawReading(bytes(got[:count]), End.COMPLETE)
        return RawReading(bytes(got), end)

    def deadline_left(self, end_at: float | None) -> float:
        left = self._recorder.deadline - time.monotonic()
        if end_at is not None:
            left = min(left, end_at - time.monotonic())
        return left

    def _finish(self, got: list[Frame], count: int | None, end: End, raw: bytearray) -> Reading:
        if count is not None and len(got) >= count:
            return Reading(got, End.COMPLETE, None, bytes(raw))
        if end is End.EOF:
            try:
                self._reader.close()
            except ProtocolError as error:
                return Reading(got, End.MALFORMED, error, bytes(raw))
        return Reading(got, end, None, bytes(raw))

    def _record(self, outgoing: bool, data: bytes) -> None:
        self.transcript.chunks.append(Chunk(outgoing, data, self._recorder.elapsed()))


def _connect_with_rcvbuf(host: str, port: int, timeout: float, rcvbuf: int) -> socket.socket:
    """``socket.create_connection`` with ``SO_RCVBUF`` set before ``connect``."""
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error if error is not None else OSError(f"cannot resolve {host!r}")
