"""The decoder's and the search application's fast paths give exactly the slow paths' results.

- The decoder remembers ``parse_header``'s result per raw header (a peer repeats
  a handful of headers): every message still gets a header dict of its own, the
  memo is bounded, and a header over a lowered limit is still refused.
- A chunk that arrives while nothing is buffered is parsed in place (``bytes``
  only; other buffer types go through the receive buffer): the messages, the
  error and the decoder's introspection after every call are the same.
- The response prefixes the fused search encoder remembers by length are bounded.
- ServerConnection takes (header, content) pairs from the decoder (the header may be
  the memo's own dict): an application still gets a request of its own.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from codec_helpers import decoder_outcome, split_at, typed_outcome
from hypothesis import given
from hypothesis import strategies as st
from reference_decoder import decode_stream

import harness.apps.search
import harness.frames
from harness import (
    ContentError,
    ContentTooLarge,
    Decoder,
    HeaderNotJSON,
    Message,
    ProtocolError,
    ServerConnection,
)
from harness import strategies as lst
from harness.apps import App, search_app
from harness.frames import FrameReader
from harness.header import parse_header_strict
from harness.message import error_response

REQUEST = Message.from_json({"action": "search", "value": "morpheus"})
WIRE = REQUEST.encode()


@st.composite
def repetitive_streams(draw: st.DrawFn) -> bytes:
    """A few distinct messages (flat and nested headers), repeated in any order, sometimes
    followed by a repeated header that comes with a violation or is cut short."""
    pool = draw(
        st.lists(
            lst.search_requests() | lst.messages(max_content_size=300),
            min_size=1,
            max_size=4,
        )
    )
    wires = [draw(lst.wire_messages(message))[1] for message in pool]
    order = draw(st.lists(st.integers(0, len(wires) - 1), max_size=12))
    data = b"".join(wires[i] for i in order)
    tail = draw(st.sampled_from(["none", "cut", "garbage"]))
    if tail == "cut":
        data += wires[0][: draw(st.integers(1, len(wires[0]) - 1))]
    elif tail == "garbage":
        data += wires[0][:2] + b"x" * (len(wires[0]) - 2)
    return data


@given(repetitive_streams(), st.data())
def test_codec_repeated_headers_decode_as_the_reference_decoder_says(
    data: bytes, draw: st.DataObject
) -> None:
    cuts = draw.draw(st.lists(st.integers(0, len(data)), max_size=8))
    chunks = split_at(data, cuts)
    expected = typed_outcome(decode_stream(data))
    assert typed_outcome(decoder_outcome(chunks)) == expected
    assert typed_outcome(decoder_outcome(chunks, api="next")) == expected


def _introspect(decoder: Decoder) -> tuple[Any, ...]:
    return (decoder.state, decoder.offset, decoder.buffered, decoder.bytes_needed)


@given(repetitive_streams() | lst.streams().map(lambda s: s.data), st.data())
def test_codec_bytes_parsed_in_place_match_the_buffered_path(data: bytes, draw: st.DataObject) -> None:
    """``bytes`` chunks may be parsed in place; ``bytearray`` chunks always go through the
    buffer: both give the same messages, error and introspection after every call."""
    chunks = split_at(data, draw.draw(st.lists(st.integers(0, len(data)), max_size=8)))
    in_place, buffered = Decoder(), Decoder()
    for chunk in chunks:
        results = []
        for decoder, piece in ((in_place, chunk), (buffered, bytearray(chunk))):
            try:
                got = decoder.feed(piece)  # type: ignore[arg-type]
            except ProtocolError as error:
                results.append((type(error), error.offset, [(m.header, m.content) for m in error.messages]))
            else:
                assert all(type(m.content) is bytes for m in got)
                results.append(([(m.header, m.content) for m in got],))
        assert results[0] == results[1]
        assert _introspect(in_place) == _introspect(buffered)
        if in_place.error is not None:
            break


def test_codec_every_message_gets_a_header_dict_of_its_own() -> None:
    decoder = Decoder()
    first, second = decoder.feed(WIRE * 2)
    assert first.header == second.header == REQUEST.header
    assert first.header is not second.header
    first.header["content-type"] = "changed"
    second.header["x-added"] = 1
    (third,) = decoder.feed(WIRE)
    assert third.header == REQUEST.header


def test_codec_headers_with_nested_values_are_not_shared() -> None:
    message = Message.from_bytes(b"abc", extra_headers={"x-list": [1, {"a": 2}]})
    first, second = Decoder().feed(message.encode() * 2)
    assert first == second == message
    assert first.header["x-list"] is not second.header["x-list"]
    first.header["x-list"][1]["a"] = 3
    assert second.header["x-list"] == [1, {"a": 2}]


def test_codec_header_memo_is_bounded_in_entries_and_key_size() -> None:
    decoder = Decoder()
    stream = b"".join(Message.from_bytes(b"x" * n).encode() for n in range(200))
    assert len(decoder.feed(stream)) == 200
    memo = decoder._reader._headers
    assert 0 < len(memo) <= harness.frames._CACHED_HEADERS
    long = Message.from_bytes(b"", extra_headers={"x-pad": "p" * harness.frames._CACHED_HEADER_MAX})
    before = dict(memo)
    assert decoder.feed(long.encode() * 2) == [long, long]
    assert memo == before


def test_codec_a_remembered_header_over_a_lowered_limit_is_refused() -> None:
    decoder = Decoder()
    assert decoder.feed(WIRE) == [REQUEST]
    decoder.max_content_length = len(REQUEST.content) - 1
    with pytest.raises(ContentTooLarge) as caught:
        decoder.feed(WIRE)
    assert caught.value.offset == len(WIRE)


def test_codec_parse_header_failures_are_not_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = harness.frames.parse_header

    def counting(raw: bytes, *args: Any) -> tuple[dict[str, Any], int]:
        calls.append(raw)
        return real(raw, *args)

    monkeypatch.setattr(harness.frames, "parse_header", counting)
    decoder = Decoder()
    assert decoder.feed(WIRE * 3) == [REQUEST] * 3
    assert len(calls) == 1  # the repeats came from the memo
    bad = b"\x00\x03{x}"
    for _ in range(2):
        with pytest.raises(HeaderNotJSON):
            Decoder().feed(bad)
    assert calls[1:] == [b"{x}", b"{x}"]


@given(st.lists(st.text(max_size=40), min_size=1, max_size=30), st.integers(0, 3))
def test_app_fused_encoder_is_exact_past_its_prefix_memo(values: list[str], remembered: int) -> None:
    search = harness.apps.search
    search._JSON_PREFIXES.clear()
    search._BINARY_PREFIXES.clear()
    saved = search._PREFIXES_REMEMBERED
    search._PREFIXES_REMEMBERED = remembered
    try:
        requests = [Message.from_json({"action": "search", "value": v}) for v in values]
        requests += [Message.from_bytes(v.encode()) for v in values]
        for request in requests:
            assert encode_search_response(request) == search_app(request).encode()
        assert len(search._JSON_PREFIXES) <= remembered
        assert len(search._BINARY_PREFIXES) <= remembered
    finally:
        search._PREFIXES_REMEMBERED = saved


def encode_search_response(request: Message) -> bytes:
    return search_app.encode_response(request.header, request.content)


# -- ServerConnection takes frames from the reader (headers may be its memo's) ------------


class Nosy(App):
    """An application that scribbles on its request's header."""

    name = "nosy"

    def respond(self, request: Message) -> Message:
        seen = dict(request.header)
        request.header["content-type"] = "scribbled"
        request.header.clear()
        return Message.from_json(seen)


def test_connection_app_that_modifies_its_request_cannot_touch_the_next_one() -> None:
    conn = ServerConnection(Nosy())
    answers = Decoder().feed(conn.receive_data(WIRE * 3) + conn.receive_data(WIRE))
    assert [a.json() for a in answers] == [REQUEST.header] * 4


def test_connection_uses_an_apps_own_encoder_and_the_default_one_otherwise() -> None:
    class Reverse(App):
        name = "reverse"

        def respond(self, request: Message) -> Message:
            return Message.from_bytes(request.content[::-1])

    class FastReverse(Reverse):
        calls = 0

        def encode_response(self, header: dict[str, Any], content: bytes) -> bytes:
            FastReverse.calls += 1
            return super().encode_response(header, content)

    for app in (Reverse(), FastReverse()):
        conn = ServerConnection(app)
        out = conn.receive_data(WIRE * 2)
        assert out == app(REQUEST).encode() * 2 and conn.requests == 2
    assert FastReverse.calls == 2
    with pytest.raises(TypeError, match=r"app must be a harness\.apps\.App"):
        ServerConnection(lambda request: request)  # type: ignore[arg-type]


def test_connection_debug_log_and_failures_name_the_request(caplog: pytest.LogCaptureFixture) -> None:
    bad = Message.from_bytes(b"\xff", content_type="text/json", encoding="utf-8")
    conn = ServerConnection(name="peer-y")
    with caplog.at_level(logging.DEBUG, logger="harness.connection"):
        out = conn.receive_data(WIRE + bad.encode() + WIRE)
    assert out == encode_search_response(REQUEST) + error_response_for(bad) + encode_search_response(REQUEST)
    lines = [r.getMessage() for r in caplog.records]
    assert any("request 2: bad content" in line for line in lines)
    assert any(line.startswith("peer-y: request 3: text/json") for line in lines)
    assert (conn.requests, conn.request_errors) == (3, 1)


def error_response_for(request: Message) -> bytes:
    try:
        search_app(request)
    except ContentError as error:
        return error_response(error).encode()
    raise AssertionError("expected a content error")


# -- the shape memo: headers that differ only in their content-length digits ---------------

_TRICKY_KEYS = ['a"content-length', "content-length ", "x-content-length", "content-lengt", "b\\"]
_LENGTH_TEXTS = ["0", "1", "7", "12", "007", "1.0", "1e1", "-1", "99999999999999999999", " 3", "3 "]


@st.composite
def same_shape_headers(draw: st.DrawFn) -> list[bytes]:
    """Raw headers built from one template: the content-length text varies (valid or not),
    around tricky neighbours (keys that end in content-length, values that spell it)."""
    before = draw(
        st.dictionaries(st.sampled_from(_TRICKY_KEYS), st.sampled_from([0, "x", '"content-length": 5']))
    )
    after = draw(
        st.dictionaries(st.sampled_from(_TRICKY_KEYS), st.sampled_from([1, None, '"content-length": 1}']))
        | st.just({})  # content-length last: the layout the shape memo takes
    )

    def raw(length_text: str) -> bytes:
        parts = [json.dumps(k) + ": " + json.dumps(v) for k, v in before.items()]
        parts += ['"byteorder": "little"', '"content-type": "t"', '"content-encoding": "e"']
        parts.append('"content-length": ' + length_text)
        parts += [json.dumps(k) + ": " + json.dumps(v) for k, v in after.items()]
        return ("{" + ", ".join(parts) + "}").encode()

    texts = draw(
        st.lists(st.sampled_from(_LENGTH_TEXTS) | st.integers(0, 200).map(str), min_size=2, max_size=8)
    )
    return [raw(text) for text in texts]


@given(same_shape_headers(), st.integers(0, 100))
def test_codec_shape_memo_reads_every_header_as_the_strict_reader(raws: list[bytes], limit: int) -> None:
    reader = FrameReader(max_content_length=limit)
    for raw in raws:
        try:
            want: object = parse_header_strict(raw, 0, limit)
        except ProtocolError as error:
            want = (type(error), error.reason)
        try:
            got: object = reader._read_header(raw, 0)
        except ProtocolError as error:
            got = (type(error), error.reason)
        assert got == want
        if isinstance(got, tuple) and isinstance(got[0], dict):
            assert list(got[0]) == list(want[0])  # type: ignore[index]  # key order too


@pytest.mark.parametrize(
    "raw",
    [
        b'{"content-length": ',  # the pattern at the very end
        b'{"content-length": }',
        b'{"content-length": 5',
        b'{"a\\"content-length": 5}',  # inside a key, after an escaped quote
        b'{"content-length": 05}',
        b'{"content-length": 5.5}',
        b'{"content-length": 1234567890123456789}',
        b'{"content-length": 5, "x": 1}',  # not the last key
        b'{"content-length": 5 }',
        b'{"content-length": 5}}',
        b'{"x": "\\\\", "b\\"content-length": 5}',
    ],
)
def test_codec_shape_memo_leaves_every_odd_place_to_the_strict_reader(raw: bytes) -> None:
    assert harness.frames._shape(raw) is None
    reader = FrameReader()
    reader.feed(
        harness.frame(
            b'{"byteorder": "big", "content-type": "t", "content-encoding": "e", "content-length": 0}'
        )
    )
    with pytest.raises(ProtocolError):
        reader.feed(harness.frame(raw))
