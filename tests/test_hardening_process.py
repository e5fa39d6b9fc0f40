"""Hardening of ``harness serve`` in its own process: bounded memory, the file-descriptor limit.

The server runs as ``python -m harness serve --port 0`` (harness.load.ServerProcess), so
its resident set size can be read from /proc and its RLIMIT_NOFILE lowered without
touching the test process.
"""

from __future__ import annotations

import resource
import selectors
import socket
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest
from server_helpers import with_fd_limit

from harness import Decoder, Message
from harness.apps import search_app
from harness.load import HostileMix, ServerProcess, default_requests, run_hostile_mix

pytestmark = pytest.mark.timeout(120)

REQUEST = default_requests()[0]
EXPECTED = search_app(Decoder().feed(REQUEST)[0]).encode()
MiB = 1 << 20
SERVE = [sys.executable, "-m", "harness", "serve", "--port", "0"]


def ask(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(REQUEST)
        data = b""
        while len(data) < len(EXPECTED):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


@pytest.fixture
def server() -> Iterator[ServerProcess]:
    with ServerProcess.reference("--idle-timeout", "30", "--log-level", "warning") as srv:
        yield srv


def test_hardening_non_readers_keep_server_rss_bounded(server: ServerProcess) -> None:
    assert ask(server.address or ("", 0)) == EXPECTED
    baseline = server.rss()
    mix = HostileMix(
        slow_senders=0,
        huge_declarers=0,
        non_readers=8,
        non_reader_value_size=256 * 1024,  # each answer echoes the value: 256 KiB out per request
        well_behaved=10,
        requests_per_client=5,
        stall_after=1.0,
        settle_timeout=30.0,
    )
    host, port = server.address or ("", 0)
    result = run_hostile_mix(host, port, mix)
    peak = server.peak_rss()
    assert server.process is not None and server.process.poll() is None, "the server died"
    assert result.non_readers_stalled == 8
    assert result.answered_in_full == 10, result.well_behaved_failures
    # The non-readers really pushed: megabytes each, until the server stopped reading them.
    assert result.non_reader_bytes_sent > 8 * MiB
    # Without backpressure the server would hold every unread answer (as much as was sent);
    # with it, a few hundred KiB per connection.
    growth = peak - baseline
    sent = result.non_reader_bytes_sent
    assert growth < 64 * MiB, f"server RSS grew by {growth / MiB:.0f} MiB ({sent} bytes sent)"
    assert ask((host, port)) == EXPECTED


def _collect_answers(
    socks: dict[int, socket.socket], want: int, timeout: float, close_answered: bool
) -> set[int]:
    """Read until ``want`` sockets have their answer (or ``timeout``); return their indexes."""
    answered: set[int] = set()
    buffers = {i: b"" for i in socks}
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        for i, sock in socks.items():
            selector.register(sock, selectors.EVENT_READ, i)
        while len(answered) < want:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            for key, _ in selector.select(remaining):
                i = key.data
                chunk = socks[i].recv(65536)
                buffers[i] += chunk
                if not chunk or len(buffers[i]) >= len(EXPECTED):
                    assert buffers[i] == EXPECTED, f"connection {i} got {buffers[i]!r}"
                    answered.add(i)
                    selector.unregister(socks[i])
                    if close_answered:
                        socks[i].close()
    return answered


def test_hardening_fd_limit_reached_accept_errors_handled_and_service_resumes() -> None:
    clients = 80
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < clients + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, clients + 256), hard))
    with tempfile.TemporaryFile() as log:
        server = ServerProcess(
            with_fd_limit(48, [*SERVE, "--max-connections", "1000", "--log-level", "warning"]), stderr=log
        )
        with server:
            address = server.address or ("", 0)
            socks = {i: socket.create_connection(address, timeout=5) for i in range(clients)}
            try:
                for sock in socks.values():
                    sock.sendall(REQUEST)
                # With 48 descriptors the server holds fewer than 48 connections at once:
                # some are answered, the rest wait in the listen backlog.
                first = _collect_answers(socks, clients, timeout=3.0, close_answered=False)
                assert 0 < len(first) < clients
                assert server.process is not None and server.process.poll() is None
                for i in first:
                    socks.pop(i).close()
                # Descriptors free again: the server accepts the waiting connections and answers.
                rest = _collect_answers(socks, len(socks), timeout=30.0, close_answered=True)
                assert rest == set(socks)
            finally:
                for sock in socks.values():
                    sock.close()
            assert ask(address) == EXPECTED
            assert server.process is not None and server.process.poll() is None
        log.seek(0)
        stderr = log.read().decode(errors="replace")
    assert "accept() failed" in stderr
    assert "Too many open files" in stderr


def test_hardening_huge_declared_length_then_streamed_content_is_not_buffered(
    server: ServerProcess,
) -> None:
    """A client declaring 2^40 bytes that keeps streaming content: refused on the header."""
    header = (
        b'{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
        b'"content-encoding": "binary", "content-length": 1099511627776}'
    )
    baseline = server.rss()
    with socket.create_connection(server.address or ("", 0), timeout=5) as sock:
        sock.sendall(len(header).to_bytes(2, "big") + header)
        sent = 0
        chunk = b"\0" * 65536
        answer = b""
        sock.settimeout(0.05)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
            except (TimeoutError, BlockingIOError):
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionResetError:
                break
            if not data:
                break
            answer += data
    messages = Decoder().feed(answer) if answer else []
    assert messages and isinstance(messages[0], Message)
    assert messages[0].json()["error"] == "content-too-large"
    assert server.rss() - baseline < 16 * MiB
