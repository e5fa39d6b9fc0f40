"""Socket helpers for the server tests: every operation has a timeout, nothing sleeps to synchronise."""

from __future__ import annotations

import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness import Decoder, Message, ProtocolError
from harness.apps import search_app
from harness.errors import ContentError
from harness.message import error_response

TIMEOUT = 5.0


def connect(address: tuple[str, int], timeout: float = TIMEOUT) -> socket.socket:
    """A connected socket with TCP_NODELAY (each ``send`` leaves as its own segment) and a timeout."""
    sock = socket.create_connection(address, timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.settimeout(timeout)
    return sock


def reset(sock: socket.socket) -> None:
    """Close with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def expected_response(request: Message) -> bytes:
    """What the reference server must answer to ``request`` (the application is pure)."""
    try:
        return search_app(request).encode()
    except ContentError as error:
        return error_response(error).encode()


@dataclass
class Reading:
    """What came back on a connection: the messages, and how the reading ended."""

    messages: list[Message] = field(default_factory=list)
    raw: bytes = b""
    closed: bool = False  # the server closed (FIN or RST)
    reset: bool = False
    error: ProtocolError | None = None  # the server's bytes broke the protocol


def read_messages(
    sock: socket.socket, count: int | None = None, timeout: float = TIMEOUT, decoder: Decoder | None = None
) -> Reading:
    """Read until ``count`` messages came (or, with ``count=None``, until the server closes).

    Raises TimeoutError when neither happens within ``timeout`` seconds.
    """
    decoder = decoder or Decoder(max_content_length=1 << 30)
    reading = Reading()
    raw = bytearray()
    deadline = time.monotonic() + timeout
    while count is None or len(reading.messages) < count:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"got {len(reading.messages)} of {count if count is not None else 'all'} messages "
                f"in {timeout} s ({bytes(raw[-200:])!r})"
            )
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            reading.closed = reading.reset = True
            break
        except TimeoutError:
            continue
        if not chunk:
            reading.closed = True
            try:
                decoder.close()
            except ProtocolError as error:
                reading.error = error
            break
        raw += chunk
        try:
            reading.messages.extend(decoder.feed(chunk))
        except ProtocolError as error:
            reading.messages.extend(error.messages)
            reading.error = error
            break
    reading.raw = bytes(raw)
    return reading


def wait_until_closed(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Read until the server closes the connection; return what it sent. TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    data = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"the server kept the connection open for {timeout} s")
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(1 << 16)
        except ConnectionResetError:
            return bytes(data)
        except TimeoutError:
            continue
        if not chunk:
            return bytes(data)
        data += chunk


def wait_for(predicate: Callable[[], object], timeout: float = TIMEOUT, interval: float = 0.01) -> None:
    """Poll ``predicate()`` until it is true (for server-side state only: counters, log records)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(interval)


def search(value: str) -> Message:
    return Message.from_json({"action": "search", "value": value})


def with_fd_limit(limit: int, argv: list[str]) -> list[str]:
    """``argv`` run with RLIMIT_NOFILE lowered to ``limit`` (soft and hard, so it cannot raise it).

    A shim lowers the limit and execs ``argv``. (Not ``preexec_fn``: the test process may have
    threads, and Python code between fork and exec can deadlock then.)
    """
    code = (
        "import os, resource, sys; "
        f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
        "os.execv(sys.argv[1], sys.argv[1:])"
    )
    return [sys.executable, "-c", code, *argv]
