"""A hostile lpjson server: it reads a client's request, then answers it badly on purpose.

:class:`HostileServer` listens on an address of its own, reads one request per
connection with the project's frame reader, computes the real answer
(:func:`~harness.clientprobe.responses.answer_for`) and then follows a *plan*: a
list of :class:`Send`, :class:`Pause`, :class:`Close` (FIN, mid-response) and
:class:`Reset` (RST, through ``SO_LINGER`` 0) steps, ending by holding the
connection open until the client closes it. Every chunk either way is recorded
in a :class:`~harness.probe.wire.Transcript` (the client's bytes as "outgoing",
as the server probe records them), so a failing check can be written out as a
capture. ``harness probe-client`` runs one per check; ``harness serve --chaos``
runs one until interrupted.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from harness.clientprobe.responses import Answer, answer_for
from harness.errors import ContentError, ProtocolError
from harness.frames import FrameReader
from harness.message import Message, error_response
from harness.probe.wire import Chunk, Transcript

__all__ = [
    "Close",
    "ConnectionRecord",
    "HostileServer",
    "Pause",
    "Plan",
    "PlanFor",
    "Reset",
    "Send",
]

log = logging.getLogger(__name__)

#: How often blocked socket calls look at the stop flag.
_POLL = 0.05
_RECV_SIZE = 65536
#: Client bytes recorded per connection (the rest is read and dropped).
_RECORD_LIMIT = 1 << 20


@dataclass(frozen=True)
class Send:
    """Send ``data`` with one ``send`` call (TCP_NODELAY: one segment when small)."""

    data: bytes


@dataclass(frozen=True)
class Pause:
    """Wait ``seconds`` before the next step (so the client reads the steps apart)."""

    seconds: float


@dataclass(frozen=True)
class Close:
    """Shut down the sending side (FIN), then wait for the client to close."""


@dataclass(frozen=True)
class Reset:
    """Abort the connection: ``SO_LINGER`` 0 and close, which sends a RST."""


Step = Send | Pause | Close | Reset
Plan = Sequence[Step]
#: The plan for an answer, or a reason the misbehaviour does not apply to this request.
PlanFor = Callable[[Answer], "Plan | str"]


@dataclass
class ConnectionRecord:
    """One connection: what the client sent, what was answered, and why it went wrong."""

    transcript: Transcript
    request: Message | None = None
    answer: Answer | None = None
    #: The client broke the protocol itself (or sent nothing): what happened.
    problem: str | None = None
    #: The plan did not apply to the client's request (the normal answer was sent instead).
    not_applicable: str | None = None
    done: threading.Event = field(default_factory=threading.Event)


class HostileServer:
    """Listens on ``host``:``port`` (0: a free port) and misbehaves by ``plan_for``.

    Use as a context manager, or :meth:`start` and :meth:`stop`. ``keep`` bounds the
    connection records kept (the chaos server keeps none).
    """

    def __init__(
        self,
        plan_for: PlanFor,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        keep: int = 16,
        label: str = "hostile",
    ) -> None:
        self._plan_for = plan_for
        self._keep = keep
        self._label = label
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._started = time.monotonic()
        self.records: list[ConnectionRecord] = []
        self.accepted = 0
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(16)
            self._listener.settimeout(_POLL)
        except OSError:
            self._listener.close()
            raise
        address = self._listener.getsockname()
        self.address: tuple[str, int] = (address[0], address[1])
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{label}-accept", daemon=True)

    def start(self) -> HostileServer:
        self._started = time.monotonic()
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop accepting, end every connection's wait, and join the threads (bounded)."""
        self._stop.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout)
        self._listener.close()
        end = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    def wait_stopped(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler or another thread)."""
        while not self._stop.wait(0.5):
            pass

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the work ------------------------------------------------------------------------

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                sock, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("%s: accept failed: %s", self._label, exc)
                return
            local = sock.getsockname()
            self.accepted += 1
            record = ConnectionRecord(
                Transcript(f"connection {self.accepted}", (peer[0], peer[1]), (local[0], local[1]))
            )
            with self._lock:
                if self._keep:
                    self.records.append(record)
                    del self.records[: -self._keep]
                self._threads = [t for t in self._threads if t.is_alive()]
                thread = threading.Thread(
                    target=self._serve, args=(sock, record), name=f"{self._label}-conn", daemon=True
                )
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket, record: ConnectionRecord) -> None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.settimeout(_POLL)
            self._exchange(sock, record)
        except OSError as exc:
            log.debug("%s: %s: %s", self._label, record.transcript.label, exc)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            record.done.set()

    def _exchange(self, sock: socket.socket, record: ConnectionRecord) -> None:
        request = self._read_request(sock, record)
        if request is None:
            return
        record.request = request
        try:
            answer = answer_for(request)
        except ContentError as error:
            record.problem = f"the client's request has unreadable text/json content: {error}"
            self._send(sock, record, error_response(error).encode())
            return
        record.answer = answer
        plan = self._plan_for(answer)
        if isinstance(plan, str):
            record.not_applicable = plan
            plan = [Send(answer.wire)]
        log.info("%s: %s: %d steps", self._label, record.transcript.label, len(plan))
        for step in plan:
            if self._stop.is_set():
                return
            if isinstance(step, Send):
                if not self._send(sock, record, step.data):
                    return
            elif isinstance(step, Pause):
                self._stop.wait(step.seconds)
            elif isinstance(step, Close):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_WR)
                record.transcript.server_closed = True
                break
            else:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                record.transcript.reset = True
                return
        self._drain(sock, record)

    def _read_request(self, sock: socket.socket, record: ConnectionRecord) -> Message | None:
        reader = FrameReader()
        while not self._stop.is_set():
            data = self._recv(sock, record)
            if data is None:
                continue
            if not data:
                record.problem = (
                    "the client closed the connection without sending a request"
                    if not record.transcript.sent
                    else f"the client closed the connection in the middle of its request "
                    f"({len(record.transcript.sent)} bytes sent)"
                )
                return None
            try:
                frames = reader.feed(data)
            except ProtocolError as error:
                record.problem = f"the client's request breaks the protocol: {error}"
                self._send(sock, record, error_response(error).encode())
                return None
            if frames:
                return Message.from_frame(frames[0])
        return None

    def _recv(self, sock: socket.socket, record: ConnectionRecord) -> bytes | None:
        """One read: bytes, ``b""`` at the client's EOF or reset, None when nothing came yet."""
        try:
            data = sock.recv(_RECV_SIZE)
        except TimeoutError:
            return None
        except OSError:
            record.transcript.reset = True
            return b""
        if data:
            if len(record.transcript.sent) < _RECORD_LIMIT:
                record.transcript.chunks.append(Chunk(True, data, self._now()))
        else:
            record.transcript.client_shutdown = True
        return data

    def _send(self, sock: socket.socket, record: ConnectionRecord, data: bytes) -> bool:
        view = memoryview(data)
        while view and not self._stop.is_set():
            try:
                sent = sock.send(view)
            except TimeoutError:
                continue
            except OSError as exc:
                log.debug("%s: %s: send failed: %s", self._label, record.transcript.label, exc)
                return False
            record.transcript.chunks.append(Chunk(False, bytes(view[:sent]), self._now()))
            view = view[sent:]
        return not view

    def _drain(self, sock: socket.socket, record: ConnectionRecord) -> None:
        """Hold the connection until the client closes it (its bytes are recorded, not answered)."""
        while not self._stop.is_set():
            if self._recv(sock, record) == b"":
                return

    def _now(self) -> float:
        return time.monotonic() - self._started
