"""A state machine of several connections to one reference server, interleaved every which way.

Rules open connections, send the next chunk of a pipelined batch on any of
them, read, half-close, and abort one with an RST (SO_LINGER 0). Invariants:
every complete request on a live connection is answered in order, and the
server still accepts (and answers) a fresh connection.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
)
from server_helpers import connect, expected_response, read_messages, reset, search

from harness import Decoder, Message, ReferenceServer
from harness import strategies as lst


@dataclass(eq=False)
class Conn:
    sock: socket.socket
    chunks: list[bytes]  # what is left to send, in order
    expected: list[bytes]  # responses to requests already complete on the wire, not yet read
    pending: list[bytes]  # responses to requests whose last byte is not sent yet
    bounds: list[int]  # cumulative stream offsets where each pending request ends
    sent: int = 0
    decoder: Decoder = field(default_factory=Decoder)
    half_closed: bool = False
    answered: int = 0


class ServerConnections(RuleBasedStateMachine):
    connections = Bundle("connections")

    def __init__(self) -> None:
        super().__init__()
        self.server = ReferenceServer(idle_timeout=30.0)
        self.server.start()
        self.live: list[Conn] = []

    _batches = st.lists(lst.search_requests() | lst.messages(max_content_size=2000), min_size=1, max_size=5)

    @initialize(target=connections, requests=_batches, data=st.data())
    def first_connection(self, requests: list[Message], data: st.DataObject) -> Conn:
        return self.open_connection(requests, data)

    @rule(target=connections, requests=_batches, data=st.data())
    def open_connection(self, requests: list[Message], data: st.DataObject) -> Conn:
        payload = b"".join(m.encode() for m in requests)
        chunks = data.draw(lst.chunkings(payload, max_chunks=8))
        bounds, end = [], 0
        for message in requests:
            end += len(message.encode())
            bounds.append(end)
        conn = Conn(
            connect(self.server.address), chunks, [], [expected_response(m) for m in requests], bounds
        )
        self.live.append(conn)
        return conn

    @rule(conn=connections)
    def send_next_chunk(self, conn: Conn) -> None:
        if conn not in self.live or conn.half_closed or not conn.chunks:
            return
        chunk = conn.chunks.pop(0)
        conn.sock.sendall(chunk)
        conn.sent += len(chunk)
        while conn.bounds and conn.bounds[0] <= conn.sent:
            conn.bounds.pop(0)
            conn.expected.append(conn.pending.pop(0))

    @rule(conn=connections)
    def read_answers(self, conn: Conn) -> None:
        if conn not in self.live or not conn.expected:
            return
        reading = read_messages(conn.sock, len(conn.expected), decoder=conn.decoder)
        assert [m.encode() for m in reading.messages] == conn.expected
        conn.answered += len(conn.expected)
        conn.expected = []

    @rule(conn=connections)
    def half_close(self, conn: Conn) -> None:
        if conn not in self.live or conn.half_closed:
            return
        # Send the rest first: a half-close mid-message would be a protocol error (tested elsewhere).
        while conn.chunks:
            self.send_next_chunk(conn)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.half_closed = True
        reading = read_messages(conn.sock, None, decoder=conn.decoder)
        assert [m.encode() for m in reading.messages] == conn.expected
        assert reading.closed and not reading.reset and reading.error is None
        conn.expected = []
        self._drop(conn)

    @rule(conn=consumes(connections))
    def abort_with_reset(self, conn: Conn) -> None:
        if conn in self.live:
            self.live.remove(conn)
            reset(conn.sock)

    @precondition(lambda self: len(self.live) > 0)
    @rule(data=st.data())
    def read_everything_somewhere(self, data: st.DataObject) -> None:
        self.read_answers(data.draw(st.sampled_from(self.live)))

    def _drop(self, conn: Conn) -> None:
        if conn in self.live:
            self.live.remove(conn)
        conn.sock.close()

    @invariant()
    def complete_requests_are_answered_in_order(self) -> None:
        # Leave a single outstanding answer unread (so answers pile up across steps and
        # connections); anything more is read and checked now, the rest in teardown.
        for conn in self.live:
            if len(conn.expected) >= 2:
                self.read_answers(conn)

    @invariant()
    def server_still_accepts(self) -> None:
        with connect(self.server.address) as sock:
            sock.sendall(search("ring").encode())
            reading = read_messages(sock, 1)
            assert [m.encode() for m in reading.messages] == [expected_response(search("ring"))]

    def teardown(self) -> None:
        try:
            for conn in list(self.live):
                self.read_answers(conn)
        finally:
            for conn in self.live:
                conn.sock.close()
            self.server.stop()


# Each example starts a server and runs up to 20 steps over real sockets: a fifth of the
# profile's examples (30 in ci, 600 in thorough) keeps the ci run to a few seconds.
ServerConnections.TestCase.settings = settings(
    ServerConnections.TestCase.settings,
    max_examples=max(5, settings.default.max_examples // 5),
    stateful_step_count=20,
    deadline=None,
)
TestServerConnections = ServerConnections.TestCase
