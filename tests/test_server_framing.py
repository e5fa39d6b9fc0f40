"""The reference server over real sockets: framing, pipelining, half-close, the wire vectors."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import connect, expected_response, read_messages, search, wait_until_closed
from test_app import WIRE_VECTORS, native

from harness import Message, ReferenceServer
from harness import strategies as lst


@pytest.fixture(scope="module", params=["uvloop", "asyncio"])
def server(request: pytest.FixtureRequest) -> Iterator[ReferenceServer]:
    with ReferenceServer(idle_timeout=10.0, use_uvloop=request.param == "uvloop") as srv:
        yield srv


_requests = (
    lst.search_requests()
    | lst.messages(max_content_size=3000)
    | lst.bad_content_messages().map(lambda c: c[0])
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(lst.streams(min_size=1, max_size=12, message_strategy=_requests), st.data())
def test_server_framing_pipelined_batch_split_at_any_points(
    server: ReferenceServer, stream: lst.Stream, data: st.DataObject
) -> None:
    chunks = data.draw(lst.chunkings(stream.data))
    with connect(server.address) as sock:
        for chunk in chunks:  # one send per chunk (TCP_NODELAY: each leaves as its own segment)
            sock.sendall(chunk)
        reading = read_messages(sock, len(stream.messages))
        assert [m.encode() for m in reading.messages] == [expected_response(m) for m in stream.messages]
        assert reading.error is None and not reading.closed


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=25)
@given(st.lists(lst.search_requests(), min_size=1, max_size=8), st.data())
def test_server_framing_byte_at_a_time_then_half_close(
    server: ReferenceServer, requests: list[Message], data: st.DataObject
) -> None:
    payload = b"".join(m.encode() for m in requests)
    size = data.draw(st.sampled_from([1, 2, 3, 7]))
    with connect(server.address) as sock:
        for i in range(0, len(payload), size):
            sock.sendall(payload[i : i + size])
        sock.shutdown(socket.SHUT_WR)
        reading = read_messages(sock, None)
    assert reading.closed and not reading.reset and reading.error is None
    assert [m.encode() for m in reading.messages] == [expected_response(m) for m in requests]


def test_server_framing_fifty_pipelined_requests_in_order(server: ReferenceServer) -> None:
    requests = [search(value) for value in ["morpheus", "ring", "🐶", "needle"] * 12 + ["a", "b"]]
    with connect(server.address) as sock:
        sock.sendall(b"".join(m.encode() for m in requests))
        reading = read_messages(sock, 50)
    assert [m.encode() for m in reading.messages] == [expected_response(m) for m in requests]


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes"), WIRE_VECTORS, ids=["morpheus", "needle", "binary"]
)
def test_server_answers_the_guide_request_bytes_with_the_guide_response_bytes(
    server: ReferenceServer, request_bytes: bytes, response_bytes: bytes
) -> None:
    # As the guide's client does it: one request, shut down the sending side, read to EOF.
    with connect(server.address) as sock:
        sock.sendall(request_bytes)
        sock.shutdown(socket.SHUT_WR)
        assert wait_until_closed(sock) == native(response_bytes)


def test_server_half_close_mid_pipeline_still_answers_everything(server: ReferenceServer) -> None:
    requests = [search(str(i)) for i in range(2000)]
    with connect(server.address) as sock:
        sock.sendall(b"".join(m.encode() for m in requests))
        sock.shutdown(socket.SHUT_WR)
        reading = read_messages(sock, None, timeout=20)
    assert reading.closed and not reading.reset
    assert len(reading.messages) == 2000
    assert reading.raw == b"".join(expected_response(m) for m in requests)


def test_server_keeps_the_connection_open_between_requests(server: ReferenceServer) -> None:
    with connect(server.address) as sock:
        for value in ["ring", "morpheus", "🐶"]:
            sock.sendall(search(value).encode())
            (reply,) = read_messages(sock, 1).messages
            assert reply.encode() == expected_response(search(value))


def test_server_large_binary_content_at_the_limit(server: ReferenceServer) -> None:
    content = bytes(range(256)) * (server.config.max_content_length // 256)
    request = Message.from_bytes(content)
    with connect(server.address) as sock:
        sock.sendall(request.encode() + search("ring").encode())
        reading = read_messages(sock, 2, timeout=10)
    assert [m.encode() for m in reading.messages] == [
        expected_response(request),
        expected_response(search("ring")),
    ]


def test_server_uses_the_requested_event_loop(server: ReferenceServer) -> None:
    assert server.loop_name in ("uvloop", "asyncio")
    if server.config.use_uvloop is False:
        assert server.loop_name == "asyncio"
    elif "uvloop" in sys.modules or server.config.use_uvloop:
        assert server.loop_name == "uvloop"


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _have_ipv6_loopback(), reason="no IPv6 loopback here")
def test_server_listens_on_ipv6_loopback() -> None:
    with ReferenceServer("::1") as srv:
        assert srv.address[0] == "::1"
        with connect(srv.address) as sock:
            sock.sendall(search("🐶").encode() * 2)
            assert [m.encode() for m in read_messages(sock, 2).messages] == [
                expected_response(search("🐶"))
            ] * 2


def test_server_sets_tcp_nodelay_on_every_connection(server: ReferenceServer) -> None:
    with connect(server.address) as sock:
        sock.sendall(search("ring").encode())
        read_messages(sock, 1)
        (snap,) = [s for s in server.snapshot() if s.peer.endswith(f":{sock.getsockname()[1]}")]
        assert snap.nodelay
