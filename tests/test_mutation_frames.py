"""Tests written from the mutation run over the frame layer, the header rules and the
server's connection (benchmarks/mutation.py; survivors in benchmarks/mutation-results.md):
each pins a behaviour a surviving mutant changed without any test noticing."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import harness.frames
import harness.header
from harness import ServerConnection
from harness.apps import App
from harness.errors import HeaderNotJSON, HeaderNotObject, IncompleteMessage, ZeroHeaderLength
from harness.frames import FrameReader, frame
from harness.header import parse_header, parse_header_strict
from harness.message import Message

GUIDE_HEADER = b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '


def _header(length: int, *, byteorder: str = "little", tail: bytes = b"") -> bytes:
    return (
        b'{"byteorder": "' + byteorder.encode() + b'", "content-type": "binary/x", '
        b'"content-encoding": "binary", "content-length": ' + str(length).encode() + tail + b"}"
    )


# -- header rules ------------------------------------------------------------------------


@pytest.mark.parametrize("parse", [parse_header, parse_header_strict])
def test_header_errors_default_to_stream_offset_0(parse: Any) -> None:
    with pytest.raises(HeaderNotObject) as caught:
        parse(b"[1]")
    assert caught.value.offset == 0
    assert caught.value.reason == "JSON header is a list, not an object"


@pytest.mark.parametrize(
    "raw",
    [
        _header(0),
        _header(5),
        _header(5, byteorder="big"),
        _header(7, tail=b', "x-trace": "abc", "x-n": 3'),
    ],
)
def test_a_valid_flat_header_never_reaches_the_strict_reader(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    want = parse_header_strict(raw)

    def strict(*args: Any) -> Any:
        raise AssertionError("the fast path gave up on a valid flat header")

    monkeypatch.setattr(harness.header, "parse_header_strict", strict)
    assert parse_header(raw) == want


# -- the frame reader ----------------------------------------------------------------------


def test_reader_refuses_a_negative_limit_saying_so() -> None:
    with pytest.raises(ValueError, match=r"^max_content_length must be >= 0$"):
        FrameReader(-1)


def test_reader_names_the_piece_a_stream_ended_in() -> None:
    reader = FrameReader()
    reader.feed(frame(_header(3))[:10])
    with pytest.raises(IncompleteMessage) as caught:
        reader.close()
    assert caught.value.reason.startswith("stream ended inside the JSON header: the message needs ")


def test_a_failed_reader_raises_copies_with_no_frames_and_logs_why(caplog: pytest.LogCaptureFixture) -> None:
    reader = FrameReader()
    with caplog.at_level(logging.DEBUG, logger="harness.frames"), pytest.raises(ZeroHeaderLength):
        reader.feed(frame(_header(0)) + b"\x00\x00")
    assert [r.getMessage() for r in caplog.records if r.name == "harness.frames"] == [
        "frame reader failed: zero-header-length: header length is 0: an empty header is not a JSON object "
        f"(message at stream offset {len(frame(_header(0)))})"
    ]
    with pytest.raises(ZeroHeaderLength) as again:
        reader.feed(b"x")
    assert again.value.frames == [] and again.value.messages == []


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    calls: list[bytes] = []
    real = harness.frames.parse_header

    def counting(raw: bytes, *args: Any) -> Any:
        calls.append(raw)
        return real(raw, *args)

    monkeypatch.setattr(harness.frames, "parse_header", counting)
    return calls


def test_a_repeated_header_in_any_layout_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # content-length is not the last key: no shape memo, only the exact one.
    raw = _header(2, tail=b', "x-after": 1')
    calls = _count_parses(monkeypatch)
    reader = FrameReader()
    for _ in range(3):  # one frame per call: the hot loop's own memo lookups
        assert len(reader.feed(frame(raw, b"ab"))) == 1
    assert calls == [raw]


def test_headers_that_differ_only_in_content_length_are_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_parses(monkeypatch)
    reader = FrameReader()
    frames = reader.feed(b"".join(frame(_header(n), b"x" * n) for n in range(1, 6)))
    assert [f.header["content-length"] for f in frames] == [1, 2, 3, 4, 5]
    assert len(calls) == 1
    # another shape with the same lengths is parsed on its own, never mixed up with the first
    other = reader.feed(b"".join(frame(_header(n, byteorder="big"), b"y" * n) for n in range(1, 6)))
    assert [f.header["byteorder"] for f in other] == ["big"] * 5
    assert len(calls) == 2


# -- the server's connection --------------------------------------------------------------


def test_connection_defaults_and_usage_errors_say_what_is_wrong() -> None:
    conn = ServerConnection()
    assert conn.pending == 0 and conn.buffered == 0
    assert repr(conn) == "<ServerConnection connection open requests=0 buffered=0>"
    with pytest.raises(ValueError, match=r"^max_pending_output must be >= 1$"):
        ServerConnection(max_pending_output=0)
    with pytest.raises(TypeError, match=r"^app must be a harness\.apps\.App, not function$"):
        ServerConnection(lambda request: request)  # type: ignore[arg-type]
    request = Message.from_json({"action": "search", "value": "ring"}).encode()
    conn = ServerConnection(max_pending_output=100)
    conn.receive_data(request * 20)
    conn.receive_eof()  # answers still owed: not closed yet
    assert conn.backlog and not conn.closed
    with pytest.raises(RuntimeError, match=r"^receive_data\(\) after receive_eof\(\): the peer cannot send"):
        conn.receive_data(b"x")


def test_connection_closing_behind_a_backlog_ignores_more_input() -> None:
    request = Message.from_json({"action": "search", "value": "ring"}).encode()
    conn = ServerConnection(max_pending_output=100)
    out = conn.receive_data(request * 20 + b"\x00\x00")  # answers owed, then a violation
    assert out and conn.backlog and not conn.closed
    assert conn.receive_data(b"more from the peer") == b""
    while conn.backlog:
        out += conn.answer_backlog()
    assert conn.closed and conn.requests == 20


class _FailsOnBoom(App):
    name = "fails-on-boom"

    def respond(self, request: Message) -> Message:
        if request.content == b"boom":
            raise KeyError("boom")
        return Message.from_bytes(b"ok")


def test_connection_logs_name_the_request_number_the_request_and_the_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    conn = ServerConnection(_FailsOnBoom(), name="peer-z")
    with caplog.at_level(logging.DEBUG, logger="harness.connection"):
        conn.receive_data(Message.from_bytes(b"fine").encode() + Message.from_bytes(b"boom").encode())
        conn.receive_data(b"\x00\x00")
    lines = [r.getMessage() for r in caplog.records if r.name == "harness.connection"]
    failed = [line for line in lines if "the application failed" in line]
    assert len(failed) == 1
    assert failed[0].startswith("peer-z: request 2: the application failed on Message(header={")
    assert "content=b'boom'" in failed[0]
    assert any(
        line.startswith("peer-z: protocol error after 2 requests: zero-header-length") for line in lines
    )
    assert isinstance(HeaderNotJSON("x", 0), HeaderNotJSON)  # a concrete class can still be raised


def test_connection_debug_log_numbers_requests_across_a_backlog(caplog: pytest.LogCaptureFixture) -> None:
    request = Message.from_json({"action": "search", "value": "ring"}).encode()
    conn = ServerConnection(max_pending_output=100, name="peer-d")
    with caplog.at_level(logging.DEBUG, logger="harness.connection"):
        conn.receive_data(request * 6)
        while conn.backlog:
            conn.answer_backlog()
    numbers = [
        int(r.getMessage().split()[2].rstrip(":"))
        for r in caplog.records
        if r.getMessage().startswith("peer-d: request ")
    ]
    assert numbers == [1, 2, 3, 4, 5, 6] and conn.requests == 6
