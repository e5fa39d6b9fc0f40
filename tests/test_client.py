"""The blocking Client: against stub servers that send exact bytes, and against the reference server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_helpers import expected_response, search
from test_app import WIRE_VECTORS, native

from harness import Client, Message, ProtocolError, ReferenceServer, decode_all
from harness import strategies as lst
from harness.apps import search_app
from harness.client import ConnectionClosed, ResponseTimeout
from harness.errors import IncompleteMessage, ZeroHeaderLength


class Stub:
    """A one-connection server on 127.0.0.1 running ``script(conn)`` in a thread."""

    def __init__(self, script: Callable[[socket.socket], None], buffer_size: int | None = None) -> None:
        self.listener = socket.socket()
        if buffer_size is not None:  # set before listen(): accepted sockets inherit them
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, buffer_size)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, buffer_size)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen()
        self.listener.settimeout(10)
        self.address = self.listener.getsockname()[:2]
        self.received = b""
        self.error: BaseException | None = None
        self._script = script
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                conn.settimeout(10)
                self._script(conn)
        except BaseException as exc:  # reported by join()
            self.error = exc

    def recv_exactly(self, conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            assert chunk, f"the client closed after {len(data)} of {n} bytes"
            data += chunk
        self.received += data
        return data

    def join(self) -> None:
        self._thread.join(10)
        self.listener.close()
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as srv:
        yield srv


@pytest.mark.parametrize(
    ("request_bytes", "response_bytes"), WIRE_VECTORS, ids=["morpheus", "needle", "binary"]
)
def test_client_speaks_the_wire_vectors_with_a_stub_that_answers_the_guides_bytes(
    request_bytes: bytes, response_bytes: bytes
) -> None:
    request_bytes = native(request_bytes)
    stub = Stub(lambda conn: (stub.recv_exactly(conn, len(request_bytes)), conn.sendall(response_bytes)))
    (request,) = decode_all(request_bytes)
    with Client(*stub.address) as client:
        response = client.request(request)
    stub.join()
    assert stub.received == request_bytes  # the client's bytes are the guide's bytes
    assert response == decode_all(response_bytes)[0]
    assert response.encode() == response_bytes


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=30)
@given(st.lists(lst.messages(max_content_size=3000), min_size=1, max_size=6), st.data())
def test_client_reassembles_responses_sent_in_any_chunks(
    responses: list[Message], data: st.DataObject
) -> None:
    payload = b"".join(m.encode() for m in responses)
    chunks = data.draw(lst.chunkings(payload, max_chunks=16))
    request = search("ring")
    size = len(request.encode()) * len(responses)

    def script(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stub.recv_exactly(conn, size)  # every request arrives before any answer: pipelining
        for chunk in chunks:
            conn.sendall(chunk)

    stub = Stub(script)
    with Client(*stub.address) as client:
        got = client.request_many([request] * len(responses))
    stub.join()
    assert got == responses


def test_client_keeps_extra_responses_for_the_next_call() -> None:
    answers = [search_app(search(str(i))) for i in range(3)]

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, len(search("0").encode()))
        conn.sendall(b"".join(m.encode() for m in answers))

    stub = Stub(script)
    with Client(*stub.address) as client:
        assert client.request(search("0")) == answers[0]
        assert client.receive(2) == answers[1:]
    stub.join()


def test_client_request_many_against_the_reference_server(server: ReferenceServer) -> None:
    requests = [search(v) for v in ["morpheus", "ring", "🐶", "needle"]] + [
        Message.from_bytes(b"binary\xf0\x9f\x98\x83")
    ]
    with Client(*server.address) as client:
        assert client.request_many(requests) == [search_app(r) for r in requests]
        assert client.request_many([]) == []
        assert client.request_many(iter(requests)) == [search_app(r) for r in requests]


def test_client_large_pipelined_batch_does_not_deadlock_against_backpressure() -> None:
    # An echo peer with tiny socket buffers stops reading while its echo is unsent. A client
    # that sent all 8 MB before reading would stall with both sides' buffers full; this one
    # reads as it sends.
    requests = [Message.from_bytes(bytes([i]) * 60_000) for i in range(140)]
    size = sum(len(m.encode()) for m in requests)

    def echo(conn: socket.socket) -> None:
        echoed = 0
        while echoed < size:
            chunk = conn.recv(4096)
            assert chunk
            conn.sendall(chunk)
            echoed += len(chunk)

    stub = Stub(echo, buffer_size=4096)
    with Client(*stub.address, timeout=5) as client:
        assert client.request_many(requests) == requests
    stub.join()


def test_client_large_pipelined_batch_against_the_reference_server() -> None:
    requests = [search(str(i)) for i in range(30_000)]
    with ReferenceServer(max_pending_output=16 * 1024) as srv, Client(*srv.address, timeout=20) as client:
        responses = client.request_many(requests)
    assert [m.encode() for m in responses] == [expected_response(r) for r in requests]


def test_client_refused_connection() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Client("127.0.0.1", port)
    with pytest.raises(ConnectionRefusedError, match=f"connection to 127.0.0.1:{port} refused"):
        client.connect()
    assert not client.connected


def test_client_timeout_carries_what_arrived() -> None:
    answer = search_app(search("ring"))
    done = threading.Event()

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, 2 * len(search("ring").encode()))
        conn.sendall(answer.encode())  # one of two answers, then silence
        done.wait(10)

    stub = Stub(script)
    client = Client(*stub.address, timeout=0.3)
    with pytest.raises(ResponseTimeout, match="1 of 2 responses came") as info:
        client.request_many([search("ring")] * 2)
    assert isinstance(info.value, TimeoutError)
    assert info.value.responses == [answer]
    assert not client.connected  # a timed-out connection is closed (its stream position is unknown)
    done.set()
    stub.join()


def test_client_server_closing_early_raises_connection_closed() -> None:
    answer = search_app(search("ring"))

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, 3 * len(search("ring").encode()))
        conn.sendall(answer.encode())

    stub = Stub(script)
    with (
        Client(*stub.address) as client,
        pytest.raises(ConnectionClosed, match="after 1 of 3 responses") as info,
    ):
        client.request_many([search("ring")] * 3)
    assert info.value.responses == [answer]
    stub.join()


def test_client_server_closing_mid_message_is_an_incomplete_message() -> None:
    answer = search_app(search("ring")).encode()

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, len(search("ring").encode()))
        conn.sendall(answer[:-3])

    stub = Stub(script)
    with Client(*stub.address) as client, pytest.raises(IncompleteMessage) as info:
        client.request(search("ring"))
    assert info.value.expected == len(answer) and info.value.received == len(answer) - 3
    stub.join()


def test_client_protocol_error_in_the_response_keeps_the_earlier_responses() -> None:
    answer = search_app(search("ring"))

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, 2 * len(search("ring").encode()))
        conn.sendall(answer.encode() + b"\x00\x00")

    stub = Stub(script)
    with Client(*stub.address) as client, pytest.raises(ProtocolError) as info:
        client.request_many([search("ring")] * 2)
    assert isinstance(info.value, ZeroHeaderLength)
    assert info.value.messages == [answer]
    stub.join()


def test_client_refuses_responses_over_its_content_limit() -> None:
    big = Message.from_bytes(b"x" * 2000)

    def script(conn: socket.socket) -> None:
        stub.recv_exactly(conn, len(search("ring").encode()))
        conn.sendall(big.encode())

    stub = Stub(script)
    with (
        Client(*stub.address, max_content_length=1000) as client,
        pytest.raises(ProtocolError, match="content-too-large"),
    ):
        client.request(search("ring"))
    stub.join()


def test_client_context_manager_closes_and_reconnects(server: ReferenceServer) -> None:
    client = Client(*server.address)
    with client:
        assert client.connected
        client.shutdown_write()
        with pytest.raises(ConnectionClosed):
            client.receive(1)
    assert not client.connected
    with client:  # a fresh connection
        assert client.request(search("ring")) == search_app(search("ring"))
    assert "not connected" in repr(client)
