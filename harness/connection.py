"""One server-side lpjson connection, sans-IO.

:class:`ServerConnection` turns the bytes a peer sends into the bytes to send
back: it drives :class:`~harness.decoder.Decoder`, hands every request to the
application and encodes the responses, in order. It never touches a socket,
so the asyncio server, the fuzzers and the tests drive exactly the same
logic::

    conn = ServerConnection()
    sock.sendall(conn.receive_data(sock.recv(65536)))
    ...
    if conn.closed:
        sock.close()

What happens when:

- **protocol error** (a framing or header violation): the responses of the
  requests completed before it, then the error message (docs/PROTOCOL.md#s2);
  ``closed`` becomes True and ``error`` holds the violation. Nothing can
  resynchronise a length-prefixed stream, so the connection must close.
- **bad text/json content** (an encoding outside the allow-list, undecodable
  bytes, text that is not strict JSON): an error message *for that request*,
  and the connection stays open. The message was framed correctly, so the
  stream is still in sync and later requests are answered normally.
- **exception inside the application**: logged with its traceback, answered
  with the error message ``internal-error``; the connection stays open.
- **EOF**: :meth:`receive_eof` answers whatever is complete; at a message
  boundary the connection is done (``closed``, no error); in the middle of a
  message ``error`` is an :class:`~harness.errors.IncompleteMessage` and the
  error message is sent to the (half-closed) peer.

Output is bounded: one call returns at most about ``max_pending_output``
bytes (plus one response). When it stops early, ``backlog`` is True and the
unanswered requests wait, decoded; the caller sends what it got and calls
``receive_data(b"")`` again once its send buffer has drained (and should stop
reading meanwhile, or the backlog grows with its input). With the default
limit and the search application this only happens when one chunk of input
holds several hundred KiB of small requests.

An application listed in :data:`harness.app.PAIR_ENCODED_APPS` (the search
application is) is answered through its direct encoder, which produces the
same bytes as ``app(request).encode()`` from the request's header and content,
without building either message; other applications get a :class:`Message`
of their own for every request.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from harness.app import (
    ENCODED_APPS,
    INTERNAL_ERROR,
    PAIR_ENCODED_APPS,
    App,
    error_message,
    error_response,
    search_app,
)
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder
from harness.errors import ContentError, IncompleteMessage, ProtocolError
from harness.message import Message

__all__ = ["DEFAULT_MAX_PENDING_OUTPUT", "ServerConnection"]

log = logging.getLogger(__name__)

#: Default bound on the bytes one ``receive_data`` call returns (and, in the
#: asyncio server, on a connection's unsent output before it stops reading).
DEFAULT_MAX_PENDING_OUTPUT = 256 * 1024


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
        self.app = app
        self._encode = _pair_encoder(app)
        self.max_pending_output = max_pending_output
        self.name = name
        # The decoder hands over (header, content) pairs; a header may be the decoder's
        # memo's own dict, so nothing here modifies one (_request() copies it).
        self._decoder = Decoder(max_content_length)
        self._decoder._pairs = True
        self._eof = False
        self._pending: list[_Request] = []  # decoded, not yet answered (from index _next on)
        self._next = 0
        self._violation: ProtocolError | None = None  # found by the decoder, reported after _pending
        #: True once the connection must be closed after sending what was returned.
        self.closed = False
        #: The protocol error that closed the connection, if any.
        self.error: ProtocolError | None = None
        #: True when a call stopped at ``max_pending_output`` with requests left to answer.
        self.backlog = False
        #: Requests answered so far (content errors and internal errors included).
        self.requests = 0
        #: Requests answered with an error message (bad content, application failure).
        self.request_errors = 0

    @property
    def max_content_length(self) -> int:
        return self._decoder.max_content_length

    @property
    def buffered(self) -> int:
        """Bytes received and not yet part of a complete message."""
        return self._decoder.buffered

    @property
    def pending(self) -> int:
        """Complete requests not yet answered (the backlog)."""
        return len(self._pending) - self._next

    @property
    def eof(self) -> bool:
        return self._eof

    # -- input ---------------------------------------------------------------

    def receive_data(self, data: bytes) -> bytes:
        """Take bytes from the peer; return the response bytes to send, in order.

        Once ``closed``, further data is ignored and ``b""`` returned (a peer
        may well keep sending after its error message). ``b""`` answers any
        backlog left by the previous call.
        """
        if self.closed:
            return b""
        if data:
            if self._eof:
                raise RuntimeError("receive_data() after receive_eof(): the peer cannot send after EOF")
            if self._violation is None:
                try:
                    messages: list[_Request] = self._decoder.feed(data)  # type: ignore[assignment]
                    if self._pending:
                        self._pending.extend(messages)
                    else:
                        self._pending = messages
                except ProtocolError as error:
                    # Answer what came before the violation, then report it.
                    self._pending.extend(error.messages)  # type: ignore[arg-type]  # pairs
                    self._violation = error
        return self._answer()

    def receive_eof(self) -> bytes:
        """The peer shut down its sending side; return the remaining response bytes.

        If ``backlog`` is True afterwards, call ``receive_data(b"")`` until it
        is False; ``closed`` becomes True once everything is answered.
        """
        if self.closed:
            return b""
        self._eof = True
        return self._answer()

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
                    header, content = pending[index]
                    index += 1
                    try:
                        response = encode(header, content)
                    except Exception as exc:
                        self.requests = answered + index - first
                        response = self._failed(_request(header, content), exc)
                    if debug:
                        self.requests = answered + index - first
                        self._log_request(_request(header, content), response)
                    append(response)
                    size += len(response)
            finally:
                self.requests = answered + index - first
            if index < count:
                self._next = index
                self.backlog = True
                return b"".join(out)
            self._pending = []
            self._next = 0
        self.backlog = False
        if self._violation is not None:
            out.append(self._fail(self._violation))
        elif self._eof:
            out.append(self._finish())
        return b"".join(out)

    def _failed(self, request: Message, exc: Exception) -> bytes:
        """The answer to a request the application could not answer."""
        self.request_errors += 1
        if isinstance(exc, ContentError):
            log.debug("%s: request %d: bad content: %s", self.name, self.requests, exc)
            return error_response(exc).encode()
        log.error(
            "%s: request %d: the application failed on %r",
            self.name,
            self.requests,
            request,
            exc_info=exc,
        )
        return error_message(INTERNAL_ERROR, f"the application failed: {type(exc).__name__}").encode()

    def _log_request(self, request: Message, response: bytes) -> None:
        log.debug(
            "%s: request %d: %s, %d content bytes -> %d bytes",
            self.name,
            self.requests,
            request.header["content-type"],
            len(request.content),
            len(response),
        )

    def _finish(self) -> bytes:
        self.closed = True
        try:
            self._decoder.close()
        except IncompleteMessage as error:
            return self._fail(error)
        return b""

    def _fail(self, error: ProtocolError) -> bytes:
        self.error = error
        self.closed = True
        self.backlog = False
        self._pending = []
        self._next = 0
        log.debug("%s: protocol error after %d requests: %s", self.name, self.requests, error)
        return error_response(error).encode()

    def __repr__(self) -> str:
        state = "closed" if self.closed else ("eof" if self._eof else "open")
        return f"<ServerConnection {self.name} {state} requests={self.requests} buffered={self.buffered}>"


#: A decoded request, as the decoder hands it over: its header (not to be modified) and content.
_Request = tuple[dict[str, Any], bytes]


def _request(header: dict[str, Any], content: bytes) -> Message:
    """The :class:`Message` of a decoded request, with a header dict of its own."""
    return Message._trusted(header.copy(), content)


def _pair_encoder(app: App) -> Callable[[dict[str, Any], bytes], bytes]:
    """``app``'s encoded answer to a request given as (header, content)."""
    pair = PAIR_ENCODED_APPS.get(app)
    if pair is not None:
        return pair
    fast = ENCODED_APPS.get(app)
    if fast is not None:
        return lambda header, content: fast(_request(header, content))
    return lambda header, content: app(_request(header, content)).encode()
