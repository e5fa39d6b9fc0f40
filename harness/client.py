"""A blocking lpjson client: the guide's ``app-client.py``, done right.

:class:`Client` keeps one TCP connection, sends requests encoded by
:meth:`Message.encode` and reads responses through one
:class:`~harness.decoder.Decoder` for the whole connection, so responses may
arrive in any chunks. :meth:`Client.request_many` pipelines: it sends every
request without waiting and reads the responses as they come (sending and
reading at the same time, so a large batch cannot deadlock against a server
that stops reading while its output is unsent).

Errors are few and clear:

- :class:`ConnectionRefusedError`: nothing listens at the address;
- :class:`ResponseTimeout` (a :class:`TimeoutError`): no progress for
  ``timeout`` seconds;
- :class:`ConnectionClosed` (a :class:`ConnectionError`): the server closed
  (or reset) the connection before answering every request;
- :class:`~harness.errors.ProtocolError`: the server's bytes break the protocol.

The last three carry ``responses``: what did arrive before the failure.
"""

from __future__ import annotations

import errno
import selectors
import socket
from collections.abc import Iterable
from types import TracebackType

from harness.decoder import Decoder
from harness.errors import ProtocolError
from harness.message import Message

__all__ = ["DEFAULT_CLIENT_MAX_CONTENT_LENGTH", "Client", "ConnectionClosed", "ResponseTimeout"]

#: The largest response content the client accepts by default (64 MiB).
DEFAULT_CLIENT_MAX_CONTENT_LENGTH = 64 << 20
_RECV_SIZE = 256 * 1024
#: Up to this many request bytes are sent in one go before reading; larger
#: batches are sent and read at the same time.
_SIMPLE_SEND_LIMIT = 64 * 1024


class ConnectionClosed(ConnectionError):
    """The server closed the connection before sending every expected response."""

    def __init__(self, message: str, responses: list[Message]) -> None:
        super().__init__(message)
        self.responses = responses


class ResponseTimeout(TimeoutError):
    """No progress (nothing sent, nothing received) for the client's timeout."""

    def __init__(self, message: str, responses: list[Message]) -> None:
        super().__init__(message)
        self.responses = responses


class Client:
    """A blocking client for one lpjson connection.

    ``timeout`` (seconds, ``None`` for none) bounds every wait: connecting,
    and each stretch without progress while sending or receiving.

    >>> with Client("127.0.0.1", 65432) as client:  # doctest: +SKIP
    ...     client.request(Message.from_json({"action": "search", "value": "ring"})).json()
    {'result': 'In the caves beneath the Misty Mountains. 💍'}
    """

    def __init__(
        self,
        host: str,
        port: int,
        timeout: float | None = 5.0,
        *,
        max_content_length: int = DEFAULT_CLIENT_MAX_CONTENT_LENGTH,
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._max_content_length = max_content_length
        self._sock: socket.socket | None = None
        self._decoder = Decoder(max_content_length)
        self._ready: list[Message] = []  # responses received beyond what was asked for

    @property
    def where(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def sock(self) -> socket.socket:
        """The connected socket (for tests that need to poke at it)."""
        if self._sock is None:
            raise ConnectionError(f"not connected to {self.where}")
        return self._sock

    @property
    def connected(self) -> bool:
        return self._sock is not None

    # -- connection ----------------------------------------------------------

    def connect(self) -> Client:
        """Open the connection (a no-op when already connected)."""
        if self._sock is not None:
            return self
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except ConnectionRefusedError:
            raise ConnectionRefusedError(
                errno.ECONNREFUSED, f"connection to {self.where} refused (is a server listening there?)"
            ) from None
        except TimeoutError:
            raise ResponseTimeout(f"could not connect to {self.where} within {self.timeout} s", []) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._decoder = Decoder(self._max_content_length)
        self._ready = []
        return self

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> Client:
        return self.connect()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.where} {'connected' if self._sock else 'not connected'}>"

    # -- requests -----------------------------------------------------------------

    def request(self, message: Message) -> Message:
        """Send one request; return its response."""
        return self.request_many([message])[0]

    def request_many(self, messages: Iterable[Message]) -> list[Message]:
        """Send every request at once (pipelining); return the responses in order."""
        batch = list(messages)
        if not batch:
            return []
        return self.exchange(b"".join(message.encode() for message in batch), len(batch))

    def exchange(self, data: bytes, count: int) -> list[Message]:
        """Send raw ``data``; return the next ``count`` messages the server sends.

        For tests and probes that need to send bytes no :class:`Message` would
        encode; ``count`` may be 0 to only send.
        """
        sock = self.connect().sock
        try:
            if len(data) <= _SIMPLE_SEND_LIMIT or count == 0:
                self._sendall(sock, data, count)
                return self._receive(sock, count)
            return self._send_and_receive(sock, data, count)
        except (ConnectionClosed, ResponseTimeout, ProtocolError):
            self.close()
            raise

    def send(self, data: bytes) -> None:
        """Send raw bytes without reading anything."""
        self._sendall(self.connect().sock, data, 0)

    def receive(self, count: int) -> list[Message]:
        """Read the next ``count`` messages."""
        try:
            return self._receive(self.connect().sock, count)
        except (ConnectionClosed, ResponseTimeout, ProtocolError):
            self.close()
            raise

    def shutdown_write(self) -> None:
        """Half-close: tell the server no more requests come (responses can still be read)."""
        self.sock.shutdown(socket.SHUT_WR)

    # -- the socket edge -------------------------------------------------------------

    def _take(self, count: int) -> list[Message]:
        taken, self._ready = self._ready[:count], self._ready[count:]
        return taken

    def _sendall(self, sock: socket.socket, data: bytes, count: int) -> None:
        try:
            sock.sendall(data)
        except TimeoutError:
            raise ResponseTimeout(f"{self.where} took no data for {self.timeout} s", []) from None
        except (BrokenPipeError, ConnectionResetError) as exc:
            if not count:
                raise ConnectionClosed(f"{self.where} closed the connection: {exc.strerror}", []) from None
            # The server may have answered before closing (an error message): read it.

    def _feed(self, chunk: bytes, responses: list[Message]) -> None:
        try:
            self._ready.extend(self._decoder.feed(chunk))
        except ProtocolError as error:
            self._ready.extend(error.messages)
            error.messages = responses + self._ready
            self._ready = []
            raise

    def _on_eof(self, responses: list[Message], count: int) -> None:
        try:
            self._decoder.close()
        except ProtocolError as error:
            error.messages = responses
            raise
        raise ConnectionClosed(
            f"{self.where} closed the connection after {len(responses)} of {count} responses", responses
        )

    def _absorb(self, chunk: bytes, responses: list[Message], count: int) -> None:
        """Take what one ``recv`` returned: the end of the stream, or more of ``responses``."""
        if not chunk:
            self._on_eof(responses, count)
        self._feed(chunk, responses)
        responses += self._take(count - len(responses))

    def _reset(self, responses: list[Message], count: int) -> ConnectionClosed:
        return ConnectionClosed(
            f"{self.where} reset the connection after {len(responses)} of {count} responses", responses
        )

    def _receive(self, sock: socket.socket, count: int) -> list[Message]:
        responses = self._take(count)
        while len(responses) < count:
            try:
                chunk = sock.recv(_RECV_SIZE)
            except TimeoutError:
                raise ResponseTimeout(
                    f"no response from {self.where} within {self.timeout} s "
                    f"({len(responses)} of {count} responses came)",
                    responses,
                ) from None
            except ConnectionResetError:
                raise self._reset(responses, count) from None
            self._absorb(chunk, responses, count)
        return responses

    def _send_and_receive(self, sock: socket.socket, data: bytes, count: int) -> list[Message]:
        """Send and read at the same time, so neither side's buffers can fill up and stall."""
        responses = self._take(count)
        view = memoryview(data)
        sent = 0
        sock.setblocking(False)
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                writing = True
                while len(responses) < count:
                    if not selector.select(self.timeout):
                        raise ResponseTimeout(
                            f"{self.where} made no progress for {self.timeout} s "
                            f"({sent} of {len(data)} bytes sent, {len(responses)} of {count} responses came)",
                            responses,
                        )
                    if writing:
                        try:
                            sent += sock.send(view[sent : sent + _RECV_SIZE])
                        except (BlockingIOError, InterruptedError):
                            pass
                        except (BrokenPipeError, ConnectionResetError):
                            sent = len(data)  # the server stopped listening; read what it said
                        if sent >= len(data):
                            writing = False
                            selector.modify(sock, selectors.EVENT_READ)
                    try:
                        chunk = sock.recv(_RECV_SIZE)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except ConnectionResetError:
                        raise self._reset(responses, count) from None
                    self._absorb(chunk, responses, count)
        finally:
            if self._sock is not None:
                sock.settimeout(self.timeout)
        return responses
