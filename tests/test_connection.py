"""ServerConnection, sans-IO: bytes in, response bytes out, whatever the chunking."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st
from server_helpers import expected_response, search

from harness import Decoder, Message, ServerConnection
from harness import strategies as lst
from harness.apps import App
from harness.errors import ContentError, IncompleteMessage, ProtocolError
from harness.message import error_response
from harness.strategies import Malformed


def drive(conn: ServerConnection, chunks: list[bytes], eof: bool = True) -> bytes:
    """Feed every chunk (draining any backlog) and the EOF; return everything sent back."""
    out = bytearray()
    for chunk in chunks:
        out += conn.receive_data(chunk)
        while conn.backlog:
            out += conn.answer_backlog()
    if eof:
        out += conn.receive_eof()
        while conn.backlog:
            out += conn.answer_backlog()
    return bytes(out)


def answers(requests: list[Message]) -> bytes:
    return b"".join(expected_response(r) for r in requests)


@given(lst.streams(message_strategy=lst.search_requests() | lst.messages(max_content_size=5000)), lst.data())
def test_connection_framing_any_chunking_gives_every_answer_in_order(
    stream: lst.Stream, data: st.DataObject
) -> None:
    chunks = data.draw(lst.chunkings(stream.data))
    conn = ServerConnection()
    assert drive(conn, chunks) == answers(stream.messages)
    assert conn.closed and conn.error is None and conn.requests == len(stream.messages)


@given(lst.malformed_messages(), st.lists(lst.search_requests(), max_size=4), lst.data())
def test_connection_protocol_error_answers_what_came_before_then_the_error(
    malformed: Malformed, before: list[Message], data: st.DataObject
) -> None:
    prefix = b"".join(m.encode() for m in before)
    chunks = data.draw(lst.chunkings(prefix + malformed.data))
    conn = ServerConnection()
    out = drive(conn, chunks)
    assert isinstance(conn.error, malformed.error)
    assert conn.error.offset == len(prefix)
    assert conn.closed and not conn.backlog
    assert out == answers(before) + error_response(conn.error).encode()
    assert conn.receive_data(b"anything after the error") == b""
    assert conn.receive_eof() == b""


def test_connection_content_too_large_is_refused_before_the_content_arrives() -> None:
    header = (
        b'{"byteorder": "little", "content-type": "binary/x", "content-encoding": "binary", '
        b'"content-length": 1099511627776}'
    )
    conn = ServerConnection(max_content_length=1000)
    out = conn.receive_data(len(header).to_bytes(2, "big") + header)
    assert conn.closed
    (message,) = Decoder().feed(out)
    assert message.json()["error"] == "content-too-large"


@given(lst.bad_content_messages(), st.lists(lst.search_requests(), min_size=1, max_size=3))
def test_connection_bad_content_gets_an_error_message_and_the_connection_stays_open(
    case: tuple[Message, type[ContentError]], after: list[Message]
) -> None:
    bad, error = case
    conn = ServerConnection()
    out = conn.receive_data(bad.encode())
    (reply,) = Decoder().feed(out)
    assert reply.json()["error"] == error.code
    assert not conn.closed and conn.error is None
    assert conn.receive_data(b"".join(m.encode() for m in after)) == answers(after)
    assert conn.request_errors == 1


def test_connection_application_exception_is_logged_and_answered(caplog: pytest.LogCaptureFixture) -> None:
    class Broken(App):
        name = "broken"

        def respond(self, request: Message) -> Message:
            if request.content == b"boom":
                raise KeyError("boom")
            return Message.from_bytes(b"ok")

    conn = ServerConnection(Broken(), name="peer-x")
    with caplog.at_level(logging.ERROR, logger="harness.connection"):
        out = conn.receive_data(Message.from_bytes(b"boom").encode() + Message.from_bytes(b"fine").encode())
    first, second = Decoder().feed(out)
    assert first.json() == {"error": "internal-error", "detail": "the application failed: KeyError"}
    assert second.content == b"ok"
    assert not conn.closed
    (record,) = caplog.records
    assert "peer-x" in record.getMessage() and record.exc_info is not None


def test_connection_application_returning_an_unencodable_message_is_an_internal_error() -> None:
    class HugeHeader(App):
        name = "huge-header"

        def respond(self, request: Message) -> Message:
            return Message.from_bytes(b"", extra_headers={"x": "y" * 70000})

    conn = ServerConnection(HugeHeader())
    (reply,) = Decoder().feed(conn.receive_data(search("ring").encode()))
    assert reply.json()["error"] == "internal-error"


@given(st.lists(lst.search_requests(), min_size=1, max_size=5), st.data())
def test_connection_eof_mid_message_is_an_incomplete_message_error(
    requests: list[Message], data: st.DataObject
) -> None:
    stream = b"".join(m.encode() for m in requests)
    last = len(requests[-1].encode())
    cut = data.draw(st.integers(len(stream) - last + 1, len(stream) - 1))
    conn = ServerConnection()
    out = conn.receive_data(stream[:cut])
    assert out == answers(requests[:-1]) and not conn.closed
    assert conn.buffered == cut - (len(stream) - last)
    out = conn.receive_eof()
    assert isinstance(conn.error, IncompleteMessage) and conn.closed
    assert conn.error.received == conn.buffered
    (reply,) = Decoder().feed(out)
    assert reply.json()["error"] == "incomplete-message"


def test_connection_clean_eof_closes_without_error() -> None:
    conn = ServerConnection()
    assert conn.receive_data(search("ring").encode()) == answers([search("ring")])
    assert conn.receive_eof() == b""
    assert conn.closed and conn.error is None


def test_connection_data_after_eof_is_a_usage_error() -> None:
    conn = ServerConnection(max_pending_output=10)
    conn.receive_data(search("ring").encode() * 3)
    conn.receive_eof()
    assert conn.backlog and not conn.closed
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")


@given(st.integers(1, 3000), st.lists(lst.search_requests(), min_size=1, max_size=60))
def test_connection_output_is_bounded_and_the_backlog_drains(limit: int, requests: list[Message]) -> None:
    expected = [expected_response(r) for r in requests]
    conn = ServerConnection(max_pending_output=limit)
    out = conn.receive_data(b"".join(m.encode() for m in requests))
    chunks = [out]
    calls = 1
    while conn.backlog:
        assert conn.pending > 0
        chunks.append(conn.answer_backlog())
        calls += 1
        assert calls <= len(requests) + 1
    for chunk in chunks:
        emitted = [m.encode() for m in Decoder().feed(chunk)]
        assert emitted, "a call answered nothing"
        # everything but the last response of a call fits under the limit
        assert sum(map(len, emitted[:-1])) < limit
    assert b"".join(chunks) == b"".join(expected)
    assert not conn.closed and conn.pending == 0


def test_connection_backlog_at_eof_is_answered_before_closing() -> None:
    requests = [search(str(i)) for i in range(20)]
    conn = ServerConnection(max_pending_output=200)
    out = conn.receive_data(b"".join(m.encode() for m in requests))
    assert conn.backlog
    out += conn.receive_eof()
    assert not conn.closed  # still answering
    while conn.backlog:
        out += conn.answer_backlog()
    assert conn.closed and conn.error is None
    assert out == answers(requests)


def test_connection_backlog_then_protocol_error() -> None:
    requests = [search(str(i)) for i in range(10)]
    conn = ServerConnection(max_pending_output=100)
    out = conn.receive_data(b"".join(m.encode() for m in requests) + b"\x00\x00")
    while conn.backlog:
        assert not conn.closed
        out += conn.answer_backlog()
    assert conn.closed and isinstance(conn.error, ProtocolError)
    assert out == answers(requests) + error_response(conn.error).encode()


def test_connection_rejects_a_zero_output_limit() -> None:
    with pytest.raises(ValueError):
        ServerConnection(max_pending_output=0)


# -- input that arrives while a backlog is pending ---------------------------------------
#
# Every driver above drains the backlog before it feeds more; a server that keeps reading
# (or a peer whose bytes were already in the receive buffer) feeds while requests are still
# waiting. The decoded requests then join the backlog: each one answered once, in order.


def test_connection_input_fed_while_a_backlog_is_pending_is_answered_once_in_order() -> None:
    first = [search(f"first {i}") for i in range(12)]
    second = [search(f"second {i}") for i in range(12)]
    third = [search(f"third {i}") for i in range(3)]
    conn = ServerConnection(max_pending_output=150)
    out = conn.receive_data(b"".join(m.encode() for m in first))
    assert conn.backlog and 0 < conn.pending < len(first)
    pending = conn.pending
    out += conn.receive_data(b"".join(m.encode() for m in second))
    assert conn.backlog
    assert conn.pending > len(second)  # the new requests joined the old backlog, none lost
    out += conn.receive_data(b"".join(m.encode() for m in third))
    while conn.backlog:
        out += conn.answer_backlog()
    assert conn.pending == 0 and pending > 0
    assert [m.json() for m in Decoder().feed(out)] == [
        m.json() for m in Decoder().feed(answers(first + second + third))
    ]
    assert out == answers(first + second + third)
    assert conn.requests == len(first + second + third) and not conn.closed


@given(
    st.lists(lst.search_requests(), min_size=1, max_size=30),
    st.integers(1, 2000),
    st.data(),
)
def test_connection_feeding_and_draining_interleaved_answers_every_request_once_in_order(
    requests: list[Message], limit: int, data: st.DataObject
) -> None:
    """Chunks arrive with any number of drains between them (often none) and the EOF
    at the end: the output is every answer exactly once, in request order."""
    stream = b"".join(m.encode() for m in requests)
    chunks = data.draw(lst.chunkings(stream))
    conn = ServerConnection(max_pending_output=limit)
    out = bytearray()
    for chunk in chunks:
        out += conn.receive_data(chunk)
        for _ in range(data.draw(st.integers(0, 2), label="drains")):
            if not conn.backlog:
                break
            out += conn.answer_backlog()
    out += conn.receive_eof()
    while conn.backlog:
        out += conn.answer_backlog()
    assert bytes(out) == answers(requests)
    assert conn.closed and conn.error is None and conn.requests == len(requests)


def test_connection_protocol_error_fed_while_a_backlog_is_pending_comes_after_every_answer() -> None:
    requests = [search(str(i)) for i in range(10)]
    more = [search(f"more {i}") for i in range(5)]
    conn = ServerConnection(max_pending_output=100)
    out = conn.receive_data(b"".join(m.encode() for m in requests))
    assert conn.backlog
    out += conn.receive_data(b"".join(m.encode() for m in more) + b"\x00\x00")
    while conn.backlog:
        assert not conn.closed
        out += conn.answer_backlog()
    assert conn.closed and isinstance(conn.error, ProtocolError)
    assert conn.error.offset == len(b"".join(m.encode() for m in requests + more))
    assert out == answers(requests + more) + error_response(conn.error).encode()


def test_connection_empty_data_changes_nothing_even_with_a_backlog() -> None:
    # "Answer the backlog" has its own name: empty data is not a way to ask for it.
    conn = ServerConnection(max_pending_output=150)
    conn.receive_data(b"".join(search(f"q {i}").encode() for i in range(12)))
    assert conn.backlog
    pending = conn.pending
    assert conn.receive_data(b"") == b""
    assert conn.pending == pending and conn.backlog
    assert conn.answer_backlog() != b"" and conn.pending < pending
