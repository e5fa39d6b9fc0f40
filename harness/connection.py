"""One server-side lpjson connection, sans-IO.

:class:`ServerConnection` turns the bytes a peer sends into the bytes to send
back: it reads frames with :class:`~harness.frames.FrameReader`, hands every
request to the application (:class:`~harness.apps.App`) and writes the
responses, in order. It never touches a socket, so the asyncio server, the
fuzzers and the tests drive exactly the same logic::

    conn = ServerConnection()
    sock.sendall(conn.receive_data(sock.recv(65536)))
    ...
    if conn.closed:
        sock.close()

What happens when (docs/PROTOCOL.md#connections-and-errors):

- **protocol error** (a framing or header violation, rule S2): the responses
  of the requests completed before it, then the error message; the state
  becomes ``CLOSED`` and ``error`` holds the violation. Nothing can
  resynchronise a length-prefixed stream, so the connection must close.
- **bad text/json content** (an encoding outside the allow-list, undecodable
  bytes, text that is not strict JSON; rule S3): an error message *for that
  request*, and the connection stays open. The message was framed correctly,
  so the stream is still in sync and later requests are answered normally.
- **exception inside the application**: logged with its traceback, answered
  with the error message ``internal-error``; the connection stays open.
- **EOF** (rule S5): :meth:`receive_eof` answers whatever is complete; at a
  message boundary the connection is done (``CLOSED``, no error); in the
  middle of a message ``error`` is an :class:`~harness.errors.IncompleteMessage`
  and the error message is sent to the (half-closed) peer.

Output is bounded: one call returns at most about ``max_pending_output``
bytes (plus one response). When it stops early the state is ``BACKLOG`` (or
``CLOSING``, when no more input is coming): the unanswered requests wait,
decoded; the caller sends what it got and calls :meth:`answer_backlog` once
its send buffer has drained (and should stop reading meanwhile, or the
backlog grows with its input). With the default limit and the search
application this only happens when one chunk of input holds several hundred
KiB of small requests.
"""

from __future__ import annotations

import enum
import logging

from harness.apps import App, search_app
from harness.errors import ContentError, IncompleteMessage, ProtocolError
from harness.frames import DEFAULT_MAX_CONTENT_LENGTH, Frame, FrameReader
from harness.message import Message, error_message, error_response

__all__ = ["DEFAULT_MAX_PENDING_OUTPUT", "INTERNAL_ERROR", "ConnectionState", "ServerConnection"]

log = logging.getLogger(__name__)

#: Default bound on the bytes one call returns (and, in the asyncio server, on a
#: connection's unsent output before it stops reading).
DEFAULT_MAX_PENDING_OUTPUT = 256 * 1024
#: The error code sent when the application itself fails on a request.
INTERNAL_ERROR = "internal-error"


class ConnectionState(enum.Enum):
    """Where a :class:`ServerConnection` is.

    ========= ================================================ ===========================
    state     meaning                                          input
    ========= ================================================ ===========================
    OPEN      every complete request is answered               read it
    BACKLOG   answers wait for the output to drain             pause reading; then
                                                               :meth:`~ServerConnection.answer_backlog`
    CLOSING   no more input (EOF, or a protocol error behind   ignored (after EOF: refused)
              the backlog); answers still wait                 :meth:`~ServerConnection.answer_backlog`
    CLOSED    everything is answered: send it and close        ignored
    ========= ================================================ ===========================
    """

    OPEN = "open"
    BACKLOG = "backlog"
    CLOSING = "closing"
    CLOSED = "closed"


_OPEN, _BACKLOG, _CLOSING, _CLOSED = (
    ConnectionState.OPEN,
    ConnectionState.BACKLOG,
    ConnectionState.CLOSING,
    ConnectionState.CLOSED,
)


class ServerConnection:
    """The server's side of one lpjson connection: bytes in, response bytes out.

    ``name`` labels the connection in log records (the asyncio server passes
    the peer address).
    """

    def __init__(
        self,
        app: App = search_app,
        max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
        max_pending_output: int = DEFAULT_MAX_PENDING_OUTPUT,
        *,
        name: str = "connection",
    ) -> None:
        if max_pending_output < 1:
            raise ValueError("max_pending_output must be >= 1")
        if not isinstance(app, App):
            raise TypeError(f"app must be a harness.apps.App, not {type(app).__name__}")
        self.app = app
        self._encode = app.encode_response
        self.max_pending_output = max_pending_output
        self.name = name
        # The reader's frame headers may be its memo's own dicts: nothing here modifies one.
        self._reader = FrameReader(max_content_length)
        self._state = _OPEN
        self._eof = False
        self._pending: list[Frame] = []  # decoded, not yet answered (from index _next on)
        self._next = 0
        self._violation: ProtocolError | None = None  # found by the reader, reported after _pending
        #: The protocol error that closed the connection, if any.
        self.error: ProtocolError | None = None
        #: Requests answered so far (content errors and internal errors included).
        self.requests = 0
        #: Requests answered with an error message (bad content, application failure).
        self.request_errors = 0

    # -- introspection -------------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def closed(self) -> bool:
        """True once the connection must be closed after sending what was returned."""
        return self._state is _CLOSED

    @property
    def backlog(self) -> bool:
        """True when a call stopped at ``max_pending_output`` with answers still owed."""
        return self._state is _BACKLOG or self._state is _CLOSING

    @property
    def eof(self) -> bool:
        """True once the peer shut down its sending side."""
        return self._eof

    @property
    def max_content_length(self) -> int:
        return self._reader.max_content_length

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a complete message."""
        return self._reader.buffered

    @property
    def pending(self) -> int:
        """Complete requests not yet answered (the backlog)."""
        return len(self._pending) - self._next

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> bytes:
        """Take bytes from the peer; return the response bytes to send, in order.

        Once the connection is closing for a protocol error or closed, further
        data is ignored and ``b""`` returned (a peer may well keep sending after
        its error message). Data after :meth:`receive_eof` is a ``RuntimeError``.
        Requests that arrive while a backlog waits join the end of it. Empty
        ``data`` changes nothing (:meth:`answer_backlog` continues a backlog).
        """
        state = self._state
        if not data or state is _CLOSED:
            return b""
        if self._eof:
            raise RuntimeError("receive_data() after receive_eof(): the peer cannot send after EOF")
        if state is _CLOSING:
            return b""
        try:
            frames = self._reader.feed(data)
        except ProtocolError as error:
            # Answer what came before the violation, then report it.
            frames = error.frames
            self._violation = error
            self._state = _CLOSING
        if self._pending:
            self._pending.extend(frames)
        else:
            self._pending = frames
        return self._answer()

    def receive_eof(self) -> bytes:
        """The peer shut down its sending side; return the remaining response bytes.

        If the state is ``CLOSING`` afterwards, call :meth:`answer_backlog`
        until it is ``CLOSED``.
        """
        if self._state is _CLOSED or self._eof:
            return b""
        self._eof = True
        self._state = _CLOSING
        return self._answer()

    def answer_backlog(self) -> bytes:
        """Answer more of the backlog (call once the previous output has drained).

        Returns ``b""`` when no answer is owed.
        """
        if self._state is _BACKLOG or self._state is _CLOSING:
            return self._answer()
        return b""

    # -- the work ------------------------------------------------------------

    def _answer(self) -> bytes:
        pending = self._pending
        out: list[bytes] = []
        if pending:
            # The hot loop: one call of the (encoding) application per request, nothing else.
            encode = self._encode
            append = out.append
            limit = self.max_pending_output
            debug = log.isEnabledFor(logging.DEBUG)
            size = 0
            index = first = self._next
            count = len(pending)
            answered = self.requests
            try:
                while index < count and size < limit:
                    header, content, _ = pending[index]
                    index += 1
                    try:
                        response = encode(header, content)
                    except Exception as exc:
                        self.requests = answered + index - first
                        response = self._failed(header, content, exc)
                    if debug:
                        self.requests = answered + index - first
                        self._log_request(header, content, response)
                    append(response)
                    size += len(response)
            finally:
                self.requests = answered + index - first
            if index < count:
                self._next = index
                if self._state is _OPEN:
                    self._state = _BACKLOG
                return b"".join(out)
            self._pending = []
            self._next = 0
        if self._violation is not None:
            out.append(self._fail(self._violation))
        elif self._eof:
            out.append(self._finish())
        elif self._state is _BACKLOG:
            self._state = _OPEN
        return b"".join(out)

    def _failed(self, header: dict[str, object], content: bytes, exc: Exception) -> bytes:
        """The answer to a request the application could not answer."""
        self.request_errors += 1
        if isinstance(exc, ContentError):
            log.debug("%s: request %d: bad content: %s", self.name, self.requests, exc)
            return error_response(exc).encode()
        log.error(
            "%s: request %d: the application failed on %r",
            self.name,
            self.requests,
            Message._trusted(dict(header), content),
            exc_info=exc,
        )
        return error_message(INTERNAL_ERROR, f"the application failed: {type(exc).__name__}").encode()

    def _log_request(self, header: dict[str, object], content: bytes, response: bytes) -> None:
        log.debug(
            "%s: request %d: %s, %d content bytes -> %d bytes",
            self.name,
            self.requests,
            header["content-type"],
            len(content),
            len(response),
        )

    def _finish(self) -> bytes:
        self._state = _CLOSED
        try:
            self._reader.close()
        except IncompleteMessage as error:
            return self._fail(error)
        return b""

    def _fail(self, error: ProtocolError) -> bytes:
        self.error = error
        self._state = _CLOSED
        self._pending = []
        self._next = 0
        log.debug("%s: protocol error after %d requests: %s", self.name, self.requests, error)
        return error_response(error).encode()

    def __repr__(self) -> str:
        return (
            f"<ServerConnection {self.name} {self._state.value} requests={self.requests} "
            f"buffered={self.buffered}>"
        )
