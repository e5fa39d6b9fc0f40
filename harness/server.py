"""The reference lpjson server: a thin asyncio layer around :class:`ServerConnection`.

Each TCP connection gets an :class:`asyncio.Protocol` that feeds the bytes it
receives to a sans-IO :class:`~harness.connection.ServerConnection` and writes
back what that returns. All protocol logic lives there; this module only does
I/O, limits and logging:

- **backpressure**: a connection whose unsent output passes
  ``max_pending_output`` bytes stops being read (``pause_writing`` /
  ``resume_writing``), so a client that never reads cannot grow the server's
  memory; neither can one whose pipelined requests are still waiting for an
  answer (``ServerConnection.backlog``).
- **idle timeout**: a connection that completes no request (and reads none of
  its output) for ``idle_timeout`` seconds is closed, whether it sends nothing
  or trickles a byte at a time.
- **max_connections**: a connection over the limit is accepted, sent the error
  message ``too-many-connections`` and closed; the others do not notice.
- **accept errors**: when the process runs out of file descriptors, the server
  (its own accept loop, see :class:`Server`) logs one warning, stops watching
  the listening socket for ``ACCEPT_RETRY_DELAY`` seconds and retries; the
  connections already open carry on.
- **logging**: one INFO record per connection opened, closed or failed;
  one DEBUG record per request (from :mod:`harness.connection`).

uvloop is used when it is installed and importable (``use_uvloop=None``).
:class:`Server` runs inside an event loop; :class:`ReferenceServer` runs one in
a background thread for tests and tools; :func:`serve` runs one in the
foreground until SIGINT/SIGTERM (``harness serve``).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import errno
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, cast

from harness.apps import App, search_app
from harness.connection import DEFAULT_MAX_PENDING_OUTPUT, ServerConnection
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.message import error_message

__all__ = [
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "DEFAULT_PORT",
    "ConnectionSnapshot",
    "ReferenceServer",
    "Server",
    "ServerConfig",
    "ServerStats",
    "event_loop_name",
    "new_event_loop",
    "raise_fd_limit",
    "serve",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 65432
DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_MAX_CONNECTIONS = 4096
DEFAULT_BACKLOG = 1024
DEFAULT_SHUTDOWN_TIMEOUT = 5.0
#: Seconds the server stops accepting after accept() fails (out of file descriptors, ...).
ACCEPT_RETRY_DELAY = 0.5
_ACCEPTS_PER_WAKEUP = 128
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: Error code sent to a connection over ``max_connections``.
TOO_MANY_CONNECTIONS = "too-many-connections"
#: Seconds a connection closed for a protocol error keeps discarding input (see _LpjsonProtocol).
LINGER = 2.0
#: Error code sent to a connection closed by the idle timeout (when its output is flushed).
IDLE_TIMEOUT = "idle-timeout"


@dataclass(frozen=True)
class ServerConfig:
    """Everything the reference server can be told.

    ``idle_timeout`` of ``None`` (or 0) disables the timeout; ``use_uvloop``
    of ``None`` means "when installed".
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_pending_output: int = DEFAULT_MAX_PENDING_OUTPUT
    backlog: int = DEFAULT_BACKLOG
    shutdown_timeout: float = DEFAULT_SHUTDOWN_TIMEOUT
    use_uvloop: bool | None = None
    app: App = field(default=search_app, compare=False)

    def __post_init__(self) -> None:
        if self.max_content_length < 0:
            raise ValueError("max_content_length must be >= 0")
        # (comparisons written so that NaN fails them: a NaN timer never fires)
        if self.idle_timeout is not None and not self.idle_timeout >= 0:
            raise ValueError("idle_timeout must be >= 0 (0 or None disables it)")
        if not self.shutdown_timeout >= 0:
            raise ValueError("shutdown_timeout must be >= 0")
        if self.max_connections < 1:
            raise ValueError("max_connections must be >= 1")
        if self.max_pending_output < 1:
            raise ValueError("max_pending_output must be >= 1")
        if self.backlog < 1:
            raise ValueError("backlog must be >= 1")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be in 0..65535")


@dataclass
class ServerStats:
    """Counters of one server run (read them from any thread; they only grow).

    ``requests`` and ``protocol_errors`` count as they happen; ``closed`` /
    ``failed`` and the byte and ``request_errors`` counts when a connection
    ends.
    """

    accepted: int = 0
    rejected: int = 0
    closed: int = 0
    failed: int = 0
    idle_timeouts: int = 0
    accept_errors: int = 0
    requests: int = 0
    request_errors: int = 0
    protocol_errors: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0


@dataclass(frozen=True)
class ConnectionSnapshot:
    """One connection's state at a moment (see :meth:`ReferenceServer.snapshot`)."""

    peer: str
    requests: int  # answered so far
    pending_requests: int  # decoded, waiting for the output to drain
    buffered_input: int  # bytes of an unfinished message
    unsent_output: int  # bytes in the transport's write buffer
    reading_paused: bool
    closing: bool
    nodelay: bool  # TCP_NODELAY on the socket (small answers are not held back by Nagle)


# -- event loops ------------------------------------------------------------------


def new_event_loop(use_uvloop: bool | None = None) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when ``use_uvloop`` is True, or None and uvloop imports."""
    if use_uvloop is not False:
        try:
            import uvloop
        except ImportError:
            if use_uvloop:
                raise
        else:
            loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
            return loop
    return asyncio.new_event_loop()


def event_loop_name(loop: asyncio.AbstractEventLoop) -> str:
    """``"uvloop"`` or ``"asyncio"``, for logs and benchmark output."""
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def raise_fd_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted`` (at most the hard limit); return the new soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        log.info("raised the open file limit from %d to %d", soft, target)
        return target
    return soft


def _format_peer(peer: Any) -> str:
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer)


# -- one connection -------------------------------------------------------------------


class Phase(enum.Enum):
    """Where the I/O half of one connection is (its protocol state is ``conn.state``)."""

    SERVING = "serving"  # reading requests and writing answers
    LINGERING = "lingering"  # error message sent, our side shut down; input discarded
    CLOSING = "closing"  # flushing, then closed (or aborted)


class _LpjsonProtocol(asyncio.Protocol):
    """The I/O half of one connection; the protocol half is ``self.conn``.

    Closing comes in three kinds. After the peer's EOF, once everything is
    answered: flush and close. After a protocol error (or a rejection) while
    the peer may still be sending: send the error message, shut down our
    sending side, and discard input until the peer closes or ``LINGER``
    seconds pass; closing a socket with unread input sends an RST, which can
    destroy the error message before the peer reads it. On the idle timeout
    or shutdown: flush and close (abort when the flush stalls).
    """

    def __init__(self, server: Server) -> None:
        self._server = server
        self._config = server.config
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.conn: ServerConnection | None = None
        self.peer = "?"
        self._phase = Phase.SERVING
        self._reason = ""
        self._writing_paused = False
        self._reading_paused = False
        self._pump_scheduled = False
        self._last_progress = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    # -- asyncio callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        self.peer = _format_peer(transport.get_extra_info("peername"))
        server = self._server
        if server.closing or len(server.connections) >= self._config.max_connections:
            server.stats.rejected += 1
            why = (
                "the server is shutting down"
                if server.closing
                else f"the server already has {len(server.connections)} connections"
            )
            log.info("rejected %s: %s", self.peer, why)
            server.rejected.add(self)
            transport.write(error_message(TOO_MANY_CONNECTIONS, why).encode())
            self._linger(why)
            return
        server.stats.accepted += 1
        server.connections.add(self)
        self.conn = ServerConnection(
            self._config.app,
            self._config.max_content_length,
            self._config.max_pending_output,
            name=self.peer,
        )
        transport.set_write_buffer_limits(high=self._config.max_pending_output)
        self._last_progress = self._loop.time()
        if self._config.idle_timeout:
            self._timer = self._loop.call_later(self._config.idle_timeout, self._on_idle_timer)
        log.info("opened %s (%d open)", self.peer, len(server.connections))

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        conn = self.conn
        if conn is None or self._phase is not Phase.SERVING:
            return  # lingering after an error: discard
        before = conn.requests
        self._handle(conn.receive_data(data), before)

    def eof_received(self) -> bool:
        if self._phase is Phase.LINGERING:
            self._finish_close()
            return True
        conn = self.conn
        if conn is not None and self._phase is Phase.SERVING:
            before = conn.requests
            self._handle(conn.receive_eof(), before)
        # Keep the transport open: the responses still have to go out.
        return True

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._last_progress = self._loop.time()  # the peer is reading
        if self.conn is not None and self.conn.backlog:
            self._schedule_pump()
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        conn = self.conn
        server = self._server
        if conn is None:  # a rejected connection
            server.rejected.discard(self)
            return
        server.connections.discard(self)
        stats = server.stats
        stats.request_errors += conn.request_errors
        stats.bytes_received += self.bytes_in
        stats.bytes_sent += self.bytes_out
        summary = f"after {conn.requests} requests ({self.bytes_in} bytes in, {self.bytes_out} out)"
        if conn.error is not None:
            stats.failed += 1
            log.info("failed %s %s: %s", self.peer, summary, conn.error)
        elif exc is not None:
            stats.failed += 1
            partial = f", {conn.buffered} bytes of an unfinished message lost" if conn.buffered else ""
            log.info("failed %s %s: %s: %s%s", self.peer, summary, type(exc).__name__, exc, partial)
        else:
            stats.closed += 1
            log.info("closed %s %s: %s", self.peer, summary, self._reason or "closed")
        server._connection_gone()

    def snapshot(self) -> ConnectionSnapshot:
        conn = self.conn
        transport = self.transport
        return ConnectionSnapshot(
            peer=self.peer,
            requests=conn.requests if conn else 0,
            pending_requests=conn.pending if conn else 0,
            buffered_input=conn.buffered if conn else 0,
            unsent_output=transport.get_write_buffer_size() if transport else 0,
            reading_paused=self._reading_paused,
            closing=self._phase is not Phase.SERVING,
            nodelay=self._nodelay(),
        )

    def _nodelay(self) -> bool:
        sock = self.transport.get_extra_info("socket") if self.transport else None
        if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    # -- the work --------------------------------------------------------------

    def _handle(self, out: bytes, requests_before: int) -> None:
        conn = self.conn
        assert conn is not None and self.transport is not None
        if conn.requests != requests_before:
            self._server.stats.requests += conn.requests - requests_before
            self._last_progress = self._loop.time()
        if out:
            self.bytes_out += len(out)
            self.transport.write(out)
        if conn.closed:
            if conn.error is not None:
                self._server.stats.protocol_errors += 1
            if conn.error is not None and not conn.eof:
                self._linger("protocol error")
            else:
                self._close("peer closed its side" if conn.error is None else "protocol error at EOF")
        elif conn.backlog:
            self._schedule_pump()
            self._update_reading()
        elif self._reading_paused:
            self._update_reading()

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Answer more of the backlog (yielding to other connections between batches)."""
        self._pump_scheduled = False
        conn = self.conn
        if conn is None or self._phase is not Phase.SERVING or self._writing_paused or not conn.backlog:
            return
        before = conn.requests
        self._handle(conn.answer_backlog(), before)

    def _update_reading(self) -> None:
        conn = self.conn
        transport = self.transport
        if conn is None or transport is None or self._phase is not Phase.SERVING or conn.eof:
            return
        pause = self._writing_paused or conn.backlog
        if pause and not self._reading_paused:
            self._reading_paused = True
            transport.pause_reading()
        elif not pause and self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()

    # -- closing ----------------------------------------------------------------

    def _set_close_timer(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_later(delay, self._on_close_timer)

    def _close(self, reason: str) -> None:
        """Close once the output is flushed; abort if that takes longer than the idle timeout."""
        if self._phase is not Phase.SERVING or self.transport is None:
            return
        self._phase = Phase.CLOSING
        self._reason = reason
        self.transport.close()
        self._set_close_timer(self._config.idle_timeout or self._config.shutdown_timeout)

    def _linger(self, reason: str) -> None:
        """Send what is queued, shut down our side, discard input until the peer closes."""
        transport = self.transport
        if self._phase is not Phase.SERVING or transport is None:
            return
        self._reason = reason
        if not transport.can_write_eof():  # pragma: no cover - TCP transports can
            self._close(reason)
            return
        self._phase = Phase.LINGERING
        transport.write_eof()
        if self._reading_paused:
            self._reading_paused = False
            transport.resume_reading()
        self._set_close_timer(LINGER)

    def _finish_close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _on_close_timer(self) -> None:
        self._timer = None
        if self.transport is not None and self._phase is not Phase.LINGERING:
            log.debug("%s: output not flushed in time: aborting", self.peer)
        self.abort(self._reason)

    def close(self, reason: str) -> None:
        """Flush and close (server shutdown)."""
        if self._phase is Phase.LINGERING:
            self.abort(reason)
        self._close(reason)

    def abort(self, reason: str) -> None:
        if self.transport is None:
            return
        self._phase = Phase.CLOSING
        self._reason = self._reason or reason
        self.transport.abort()

    # -- idle timeout ------------------------------------------------------------

    def _on_idle_timer(self) -> None:
        self._timer = None
        transport = self.transport
        conn = self.conn
        timeout = self._config.idle_timeout
        if transport is None or conn is None or self._phase is not Phase.SERVING or not timeout:
            return
        remaining = self._last_progress + timeout - self._loop.time()
        if remaining > 0:
            self._timer = self._loop.call_later(remaining, self._on_idle_timer)
            return
        self._server.stats.idle_timeouts += 1
        partial = f", {conn.buffered} bytes of an unfinished message" if conn.buffered else ""
        reason = f"idle timeout: no complete request in {timeout:g} s{partial}"
        if transport.get_write_buffer_size() == 0:
            transport.write(error_message(IDLE_TIMEOUT, f"no complete request in {timeout:g} s").encode())
            self._close(reason)
        else:
            self.abort(reason)


# -- the server ---------------------------------------------------------------------


class Server:
    """The reference server inside a running event loop.

    ``await start()`` listens and returns the bound (host, port);
    ``await shutdown()`` stops accepting, lets every connection flush the
    responses it already produced (up to ``shutdown_timeout``), then aborts
    what is left.

    The server runs its own accept loop instead of ``loop.create_server``:
    when ``accept()`` fails for lack of file descriptors or memory, asyncio
    (3.11) schedules a retry for every connection still waiting and logs a
    traceback each time (tens of thousands of records a second), and uvloop
    silently resets every waiting connection. Here the listening socket is
    simply not watched for ``accept_retry_delay`` seconds, with one WARNING,
    and the waiting connections stay in the kernel's backlog until then.
    """

    def __init__(self, config: ServerConfig | None = None, **overrides: Any) -> None:
        config = config or ServerConfig()
        self.config = replace(config, **overrides) if overrides else config
        self.stats = ServerStats()
        self.connections: set[_LpjsonProtocol] = set()
        #: Connections sent ``too-many-connections``, lingering until the peer closes.
        self.rejected: set[_LpjsonProtocol] = set()
        self.closing = False
        self._listener: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._all_gone: asyncio.Event | None = None
        self._address: tuple[str, int] | None = None
        self._accept_retry: asyncio.TimerHandle | None = None
        self._handshakes: set[asyncio.Task[None]] = set()
        self._failed_accepts = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the server has not been started")
        return self._loop

    @property
    def address(self) -> tuple[str, int]:
        if self._address is None:
            raise RuntimeError("the server has not been started")
        return self._address

    async def start(self) -> tuple[str, int]:
        self._loop = asyncio.get_running_loop()
        self._all_gone = asyncio.Event()
        config = self.config
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        listener = socket.create_server(
            (config.host, config.port), family=family, backlog=config.backlog, reuse_port=False
        )
        listener.setblocking(False)
        self._listener = listener
        sockname = listener.getsockname()
        self._address = (str(sockname[0]), int(sockname[1]))
        self._loop.add_reader(listener.fileno(), self._accept)
        log.info(
            "listening on %s (%s; max-content-length %d, idle-timeout %s, max-connections %d)",
            _format_peer(self._address),
            event_loop_name(self._loop),
            config.max_content_length,
            config.idle_timeout,
            config.max_connections,
        )
        return self._address

    # -- accepting -------------------------------------------------------------

    def _accept(self) -> None:
        listener = self._listener
        if listener is None:
            return
        for _ in range(_ACCEPTS_PER_WAKEUP):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:  # the peer gave up while waiting in the backlog
                continue
            except OSError as exc:
                self._accept_failed(exc)
                return
            if self._failed_accepts:
                log.info("accepting again after %d failed accept() calls", self._failed_accepts)
                self._failed_accepts = 0
            sock.setblocking(False)
            # asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, which an
            # accept() on a socket.create_server() listener is not: without it, Nagle holds
            # back small pipelined answers until the peer's (delayed) ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            task = self.loop.create_task(self._attach(sock))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    async def _attach(self, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: _LpjsonProtocol(self), sock)
        except OSError as exc:  # the peer vanished between accept() and here
            log.info("failed to set up an accepted connection: %s", exc)
            sock.close()

    def _accept_failed(self, exc: OSError) -> None:
        self.stats.accept_errors += 1
        self._failed_accepts += 1
        loop = self.loop
        if self._listener is not None:
            loop.remove_reader(self._listener.fileno())
        if self._failed_accepts > 1:
            level = logging.DEBUG  # one WARNING per episode, not one per retry
        elif exc.errno in _RESOURCE_ERRNOS:
            level = logging.WARNING
        else:
            level = logging.ERROR
        log.log(
            level,
            "accept() failed: %s (%d connections open); retrying every %g s",
            exc,
            len(self.connections),
            ACCEPT_RETRY_DELAY,
        )
        self._accept_retry = loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._accept_retry = None
        if self._listener is not None and not self.closing:
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def _stop_accepting(self) -> None:
        if self._accept_retry is not None:
            self._accept_retry.cancel()
            self._accept_retry = None
        listener, self._listener = self._listener, None
        if listener is not None:
            self.loop.remove_reader(listener.fileno())
            listener.close()

    # -- closing ---------------------------------------------------------------

    def _connection_gone(self) -> None:
        if not self.connections and self._all_gone is not None:
            self._all_gone.set()

    async def shutdown(self, timeout: float | None = None) -> None:
        """Stop accepting; flush and close every connection; abort the stragglers after ``timeout``."""
        if self._loop is None or self.closing:
            return
        self.closing = True
        timeout = self.config.shutdown_timeout if timeout is None else timeout
        self._stop_accepting()
        if self._handshakes:
            await asyncio.wait(list(self._handshakes), timeout=1.0)
        count = len(self.connections)
        for protocol in list(self.connections):
            protocol.close("server shutting down")
        if self.connections and self._all_gone is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), timeout)
        stragglers = list(self.connections)
        for protocol in stragglers:
            protocol.abort(f"server shutting down; output not flushed within {timeout:g} s")
        if stragglers and self._all_gone is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_gone.wait(), 1.0)
        # Rejected connections linger until their peer closes (up to LINGER): cut them off
        # now that the others are done, and let connection_lost() close their sockets.
        for protocol in list(self.rejected):
            protocol.abort("server shutting down")
        if self.rejected:
            await asyncio.sleep(0)
        log.info(
            "stopped: %d connections closed at shutdown (%d aborted); %d requests served in total",
            count,
            len(stragglers),
            self.stats.requests,
        )


class ReferenceServer:
    """The reference server in a background thread with its own event loop.

    >>> with ReferenceServer() as server:           # doctest: +SKIP
    ...     host, port = server.address
    ...     with Client(host, port) as client: ...

    Keyword arguments are :class:`ServerConfig` fields (``max_content_length``,
    ``idle_timeout``, ``max_connections``, ``max_pending_output``, ``app``,
    ``use_uvloop``, ...). ``stats`` counts what happened.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, **config: Any) -> None:
        self.config = ServerConfig(host=host, port=port, **config)
        self._server = Server(self.config)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def stats(self) -> ServerStats:
        return self._server.stats

    @property
    def address(self) -> tuple[str, int]:
        return self._server.address

    @property
    def loop_name(self) -> str:
        return event_loop_name(self._loop) if self._loop is not None else "not started"

    @property
    def open_connections(self) -> int:
        return len(self._server.connections)

    def snapshot(self, timeout: float = 5.0) -> list[ConnectionSnapshot]:
        """The state of every open connection, taken on the server's own thread."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return []

        async def take() -> list[ConnectionSnapshot]:
            return [protocol.snapshot() for protocol in self._server.connections]

        return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout)

    def start(self, timeout: float = 10.0) -> tuple[str, int]:
        """Start listening; return the bound (host, port)."""
        if self._thread is not None:
            raise RuntimeError("the server was already started")
        self._thread = threading.Thread(target=self._run, name="harness-reference-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the reference server did not start within {timeout} s")
        if self._startup_error is not None:
            self._thread.join(timeout)
            raise self._startup_error
        return self.address

    def _run(self) -> None:
        loop = self._loop = new_event_loop(self.config.use_uvloop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self._server.start()
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self._server.shutdown()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop accepting, flush and close the connections, end the thread."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or not thread.is_alive() or loop is None or stop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already ended
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        if thread.is_alive():
            raise TimeoutError(f"the reference server did not stop within {timeout} s")

    def __enter__(self) -> ReferenceServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        where = _format_peer(self._server._address) if self._server._address else "not started"
        return f"<ReferenceServer {where} {self.loop_name} open={self.open_connections}>"


# -- foreground ------------------------------------------------------------------------


@contextlib.contextmanager
def _signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (
            NotImplementedError,
            RuntimeError,
            ValueError,
        ):  # pragma: no cover - not POSIX / not main thread
            continue
        installed.append(signum)
    try:
        yield
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def serve(config: ServerConfig, ready: Callable[[tuple[str, int]], None] | None = None) -> ServerStats:
    """Run the server in the foreground until SIGINT or SIGTERM; then shut down gracefully.

    ``ready`` is called with the bound address once the server listens.
    """
    server = Server(config)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with _signals(loop, stop):
            address = await server.start()
            if ready is not None:
                ready(address)
            await stop.wait()
            log.info("signal received: shutting down")
            await server.shutdown()

    loop = new_event_loop(config.use_uvloop)
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    return server.stats
