"""Hardening of the reference server against many and hostile clients (in-process server).

Modest sizes, bounded: the full-size mix is ``benchmarks/bench_hardening.py``. The
tests that need the server in its own process (RSS, file-descriptor limit) are in
``test_hardening_process.py``.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import struct
import time
from collections.abc import Iterator

import pytest

from harness import Decoder, Message
from harness.apps import search_app
from harness.load import HostileMix, default_requests, run_hostile_mix
from harness.server import ReferenceServer

pytestmark = pytest.mark.timeout(90)

REQUESTS = default_requests()
EXPECTED = [search_app(Decoder().feed(raw)[0]).encode() for raw in REQUESTS]


def raise_nofile(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if target < wanted:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} is below {wanted}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def wait_until(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


def read_messages(sock: socket.socket, count: int, timeout: float = 5.0) -> list[Message]:
    decoder = Decoder()
    messages: list[Message] = []
    sock.settimeout(timeout)
    while len(messages) < count:
        data = sock.recv(65536)
        if not data:
            break
        messages += decoder.feed(data)
    return messages


def reset(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0) instead of FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def assert_serves(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"".join(REQUESTS))
        answers = read_messages(sock, len(REQUESTS))
    assert [m.encode() for m in answers] == EXPECTED


@pytest.fixture
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer(idle_timeout=1.0) as srv:
        yield srv


def test_hardening_1000_concurrent_connections_all_answered() -> None:
    connections, rounds = 1000, 3
    raise_nofile(2 * connections + 256)  # both ends of every connection live in this process

    async def client(address: tuple[str, int], index: int, all_open: asyncio.Barrier) -> int:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address), 20)
        try:
            await asyncio.wait_for(all_open.wait(), 30)  # every connection is open at once
            decoder = Decoder()
            answered = 0
            for k in range(rounds):
                i = (index + k) % len(REQUESTS)
                writer.write(REQUESTS[i])
                got: list[Message] = []
                while not got:
                    data = await asyncio.wait_for(reader.read(65536), 20)
                    assert data, f"connection {index} closed by the server"
                    got = decoder.feed(data)
                assert [m.encode() for m in got] == [EXPECTED[i]]
                answered += 1
            return answered
        finally:
            writer.close()

    async def main(address: tuple[str, int]) -> list[int]:
        barrier = asyncio.Barrier(connections)
        return await asyncio.gather(*(client(address, i, barrier) for i in range(connections)))

    with ReferenceServer(idle_timeout=30.0) as srv:
        answered = asyncio.run(main(srv.address))
        assert answered == [rounds] * connections
        assert srv.stats.accepted >= connections
        wait_until(lambda: srv.open_connections == 0, 10, "the server to see every connection close")
        assert_serves(srv.address)


def test_hardening_slow_senders_are_cut_off_by_the_idle_timeout_while_others_are_served(
    server: ReferenceServer,
) -> None:
    mix = HostileMix(
        slow_senders=30,
        slow_interval=0.1,  # ten bytes a second: busy, but never a whole request
        huge_declarers=0,
        non_readers=0,
        well_behaved=20,
        requests_per_client=5,
        timeout=5.0,
        slow_deadline=10.0,
    )
    result = run_hostile_mix(*server.address, mix)
    assert result.answered_in_full == 20, result.well_behaved_failures
    assert result.slow_cut_off == 30
    assert result.slow_answers == 0
    # Idle timeout 1 s: cut off after about a second although a byte arrives every 0.1 s.
    assert result.slow_cut_off_after_max < 3.0
    assert server.stats.idle_timeouts >= 30
    assert_serves(server.address)


def test_hardening_huge_declared_lengths_refused_at_once(server: ReferenceServer) -> None:
    header = (
        b'{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
        b'"content-encoding": "binary", "content-length": 1099511627776}'
    )
    socks = [socket.create_connection(server.address, timeout=5) for _ in range(20)]
    try:
        started = time.monotonic()
        for sock in socks:
            sock.sendall(struct.pack(">H", len(header)) + header + b"\0" * 1000)
        for sock in socks:
            (message,) = read_messages(sock, 1)
            assert message.json()["error"] == "content-too-large"
            sock.settimeout(5)
            assert sock.recv(65536) == b"", "the server must close after refusing"
        elapsed = time.monotonic() - started
    finally:
        for sock in socks:
            sock.close()
    # Refused on the header, not after waiting for (or buffering) content that never comes.
    assert elapsed < 2.0
    assert server.stats.protocol_errors >= 20
    assert_serves(server.address)


def test_hardening_resets_mid_message_leave_the_server_serving(server: ReferenceServer) -> None:
    request = REQUESTS[0]
    before_failed = server.stats.failed + server.stats.closed
    cut_points = [1, 2, 5, len(request) // 2, len(request) - 1]
    for cut in cut_points:
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(request[:cut])
        reset(sock)
    # Reset while the server still has answers to write: many pipelined requests, never read.
    for _ in range(5):
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(request * 2000)
        reset(sock)
    # And a reset mid-message on a connection that was answered before.
    sock = socket.create_connection(server.address, timeout=5)
    sock.sendall(request)
    assert [m.encode() for m in read_messages(sock, 1)] == [EXPECTED[0]]
    sock.sendall(request[:40])
    reset(sock)
    wait_until(lambda: server.open_connections == 0, 10, "the server to drop the reset connections")
    assert server.stats.failed + server.stats.closed - before_failed == len(cut_points) + 6
    assert_serves(server.address)


def test_hardening_half_message_then_close_gets_incomplete_message_error(server: ReferenceServer) -> None:
    with socket.create_connection(server.address, timeout=5) as sock:
        sock.sendall(REQUESTS[0][:50])
        sock.shutdown(socket.SHUT_WR)
        (message,) = read_messages(sock, 1)
        assert message.json()["error"] == "incomplete-message"
        assert sock.recv(65536) == b""
    assert_serves(server.address)
