"""Byte-echo servers for ``harness probe --protocol echo`` (tests/test_probe_echo.py).

Three correct servers in the styles people write them (asyncio streams, a thread per
connection with ``socketserver``, a ``selectors`` loop like the guide's, fixed), and one
server per realistic bug, each meant to be caught by one check of
:data:`harness.probe.echo.ECHO_CHECKS`. Standard library only, nothing from harness: they
stand for servers written independently of the probe.

Run one: ``python tests/echo_servers.py NAME HOST PORT`` (``--list`` shows the names). Each
serves until it is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import socketserver
import sys
import threading
import types
from collections.abc import Callable

#: A ``selectors`` server stops reading a connection while this much of its echo is unsent.
MAX_PENDING = 256 * 1024
_RECV = 65536


# -- correct servers -----------------------------------------------------------------


def asyncio_streams(host: str, port: int) -> None:
    """Correct: asyncio streams; ``drain()`` stops reading while the peer does not read."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(_RECV):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def main() -> None:
        server = await asyncio.start_server(echo, host, port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


class _SendallHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        conn: socket.socket = self.request
        with contextlib.suppress(OSError):
            while data := conn.recv(_RECV):
                conn.sendall(data)


class _ThreadingServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 256


def threads(host: str, port: int) -> None:
    """Correct: a thread per connection (``socketserver``), ``recv`` then ``sendall``."""
    with _ThreadingServer((host, port), _SendallHandler) as server:
        server.serve_forever()


def selectors_loop(host: str, port: int) -> None:
    """Correct: the guide's multi-connection server, fixed.

    A ``bytearray`` per connection, EVENT_WRITE only while there is something to send,
    reading paused while ``MAX_PENDING`` bytes are unsent, a half-closed connection closed
    once its echo is out, and a socket error closes that connection only.
    """
    sel = selectors.DefaultSelector()
    lsock = socket.create_server((host, port), backlog=256)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)

    def close(sock: socket.socket) -> None:
        sel.unregister(sock)
        sock.close()

    def service(sock: socket.socket, state: types.SimpleNamespace, mask: int) -> None:
        try:
            if mask & selectors.EVENT_READ:
                data = sock.recv(_RECV)
                if data:
                    state.out += data
                else:
                    state.eof = True
            if mask & selectors.EVENT_WRITE and state.out:
                sent = sock.send(state.out)
                del state.out[:sent]
        except BlockingIOError:
            pass
        except OSError:
            close(sock)
            return
        if state.eof and not state.out:
            close(sock)
            return
        events = selectors.EVENT_WRITE if state.out else 0
        if not state.eof and len(state.out) < MAX_PENDING:
            events |= selectors.EVENT_READ
        sel.modify(sock, events, state)

    while True:
        for key, mask in sel.select():
            if key.data is None:
                with contextlib.suppress(BlockingIOError, ConnectionError):
                    conn, _ = lsock.accept()
                    conn.setblocking(False)
                    state = types.SimpleNamespace(out=bytearray(), eof=False)
                    sel.register(conn, selectors.EVENT_READ, state)
            else:
                service(key.fileobj, key.data, mask)  # type: ignore[arg-type]


# -- one bug each --------------------------------------------------------------------


def _thread_per_connection(host: str, port: int, handle: Callable[[socket.socket], None]) -> None:
    with socket.create_server((host, port), backlog=256) as lsock:
        while True:
            conn, _ = lsock.accept()
            threading.Thread(target=_serve, args=(conn, handle), daemon=True).start()


def _serve(conn: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    with conn, contextlib.suppress(OSError):
        handle(conn)


def first_recv_only(host: str, port: int) -> None:
    """Bug: echoes what the first ``recv()`` returned, then reads the rest and drops it
    (written for a client that sends one short line). Meant for ``echo-one-byte``."""

    def handle(conn: socket.socket) -> None:
        conn.sendall(conn.recv(_RECV))
        while conn.recv(_RECV):
            pass

    _thread_per_connection(host, port, handle)


def text_mode(host: str, port: int) -> None:
    """Bug: treats the bytes as text: decodes them as UTF-8 (errors replaced) and encodes
    the text back. Meant for ``echo-binary``."""

    def handle(conn: socket.socket) -> None:
        while data := conn.recv(_RECV):
            conn.sendall(data.decode("utf-8", errors="replace").encode("utf-8"))

    _thread_per_connection(host, port, handle)


def send_ignores_count(host: str, port: int) -> None:
    """Bug: a non-blocking ``selectors`` loop that echoes with ``sock.send(data)`` and ignores
    the count it returns: what the kernel did not take is dropped. Meant for ``echo-large``."""
    sel = selectors.DefaultSelector()
    lsock = socket.create_server((host, port), backlog=256)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            if sock is lsock:
                conn, _ = lsock.accept()
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ)
                continue
            try:
                data = sock.recv(_RECV)
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                sock.close()
                continue
            with contextlib.suppress(BlockingIOError):
                sock.send(data)  # the bug: the rest of data is lost when send() takes less


def shared_state(host: str, port: int) -> None:
    """Bug: a ``selectors`` loop whose per-connection state is a mutable default argument,
    created once, so every connection shares one output buffer: under concurrency a
    connection gets other connections' bytes. Meant for ``echo-interleaved``."""
    sel = selectors.DefaultSelector()
    lsock = socket.create_server((host, port), backlog=256)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, data=None)

    def accept(state: types.SimpleNamespace = types.SimpleNamespace(outb=bytearray())) -> None:  # noqa: B008 (the bug)
        conn, _ = lsock.accept()
        conn.setblocking(False)
        sel.register(conn, selectors.EVENT_READ, data=state)

    while True:
        for key, mask in sel.select():
            if key.data is None:
                accept()
                continue
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            state = key.data
            try:
                if mask & selectors.EVENT_READ:
                    data = sock.recv(_RECV)
                    if not data:
                        sel.unregister(sock)
                        sock.close()
                        continue
                    state.outb += data
                    sel.modify(sock, selectors.EVENT_WRITE, state)
                elif mask & selectors.EVENT_WRITE:
                    sent = sock.send(state.outb)
                    del state.outb[:sent]
                    if not state.outb:
                        sel.modify(sock, selectors.EVENT_READ, state)
            except BlockingIOError:
                pass
            except OSError:
                sel.unregister(sock)
                sock.close()


def one_at_a_time(host: str, port: int) -> None:
    """Bug: the guide's echo server with an accept loop: serves connections one after
    another, so a client that is slow (or idle) blocks every other. Meant for
    ``echo-slow-sender``."""
    with socket.create_server((host, port), backlog=256) as lsock:
        while True:
            conn, _ = lsock.accept()
            with conn, contextlib.suppress(OSError):
                while data := conn.recv(_RECV):
                    conn.sendall(data)


def keeps_open(host: str, port: int) -> None:
    """Bug: a thread per connection that echoes until EOF and returns without closing the
    socket, which stays in the server's list of clients: a client that half-closes gets its
    echo but never the server's FIN. Meant for ``echo-half-close``."""
    clients: list[socket.socket] = []  # every client accepted (for a status line); never pruned

    def echo_until_eof(conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := conn.recv(_RECV):
                conn.sendall(data)
        # the bug: no conn.close(); clients keeps the socket alive

    with socket.create_server((host, port), backlog=256) as lsock:
        while True:
            conn, _ = lsock.accept()
            clients.append(conn)
            threading.Thread(target=echo_until_eof, args=(conn,), daemon=True).start()


def unbounded(host: str, port: int) -> None:
    """Bug: an ``asyncio.Protocol`` that writes every chunk back and never pauses reading: a
    client that sends without reading grows the transport's buffer without bound. Meant
    for ``echo-never-reads``."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.Transport)
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # pause_writing() is never acted on

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, host, port, backlog=256)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


#: name -> server; the first three are correct.
SERVERS: dict[str, Callable[[str, int], None]] = {
    "asyncio-streams": asyncio_streams,
    "threads": threads,
    "selectors": selectors_loop,
    "first-recv-only": first_recv_only,
    "text-mode": text_mode,
    "send-ignores-count": send_ignores_count,
    "shared-state": shared_state,
    "one-at-a-time": one_at_a_time,
    "keeps-open": keeps_open,
    "unbounded": unbounded,
}
CORRECT = ["asyncio-streams", "threads", "selectors"]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--list"]:
        for name, server in SERVERS.items():
            print(f"{name:<20} {(server.__doc__ or '').split(chr(10))[0]}")
        return 0
    if len(argv) != 3 or argv[0] not in SERVERS:
        print(f"usage: python {sys.argv[0]} NAME HOST PORT (NAME: {', '.join(SERVERS)})", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        SERVERS[argv[0]](argv[1], int(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
