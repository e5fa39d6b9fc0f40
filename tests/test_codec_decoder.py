"""Unit tests for the harness.Decoder API: state, offset, buffered, bytes_needed, errors."""

from __future__ import annotations

import pytest

from harness import (
    DEFAULT_MAX_CONTENT_LENGTH,
    ContentTooLarge,
    Decoder,
    DecoderState,
    HeaderNotJSON,
    IncompleteMessage,
    InvalidHeaderValue,
    Message,
    ProtocolError,
    decode_all,
)
from harness.decoder import parse_header

REQUEST = Message.from_json({"action": "search", "value": "morpheus"}, byteorder="little")
WIRE = REQUEST.encode()
HEADER_END = 2 + int.from_bytes(WIRE[:2], "big")


def test_codec_decoder_defaults() -> None:
    decoder = Decoder()
    assert decoder.max_content_length == DEFAULT_MAX_CONTENT_LENGTH == 1 << 20
    assert decoder.state is DecoderState.PREFIX
    assert (decoder.offset, decoder.buffered, decoder.bytes_needed, decoder.error) == (0, 0, 2, None)
    with pytest.raises(ValueError):
        Decoder(max_content_length=-1)


def test_codec_decoder_state_offset_buffered_bytes_needed_through_one_message() -> None:
    decoder = Decoder()
    for i in range(len(WIRE)):
        got = decoder.feed(WIRE[i : i + 1])
        received = i + 1
        if received < 2:
            state, needed = DecoderState.PREFIX, 2 - received
        elif received < HEADER_END:
            state, needed = DecoderState.HEADER, HEADER_END - received
        elif received < len(WIRE):
            state, needed = DecoderState.CONTENT, len(WIRE) - received
        else:
            state, needed = DecoderState.PREFIX, 2
        assert (decoder.state, decoder.bytes_needed) == (state, needed), received
        if received < len(WIRE):
            assert got == [] and decoder.offset == 0 and decoder.buffered == received
        else:
            assert got == [REQUEST] and decoder.offset == len(WIRE) and decoder.buffered == 0
    decoder.close()
    assert decoder.state is DecoderState.CLOSED and decoder.bytes_needed == 0


def test_codec_decoder_next_message_gives_one_message_at_a_time() -> None:
    decoder = Decoder()
    decoder.receive_data(WIRE * 3 + WIRE[:5])
    assert decoder.buffered == 3 * len(WIRE) + 5
    for n in range(1, 4):
        assert decoder.next_message() == REQUEST
        assert decoder.offset == n * len(WIRE)
    assert decoder.next_message() is None
    assert decoder.buffered == 5 and decoder.state is DecoderState.HEADER
    decoder.receive_data(WIRE[5:])
    assert decoder.next_message() == REQUEST
    assert decoder.next_message() is None
    decoder.receive_data(b"")
    assert decoder.next_message() is None


def test_codec_decoder_close_keeps_whole_buffered_messages_for_next_message() -> None:
    decoder = Decoder()
    decoder.receive_data(WIRE * 2)
    assert decoder.next_message() == REQUEST
    decoder.close()  # the second message is whole: the stream did not end mid-message
    assert decoder.state is DecoderState.CLOSED
    assert decoder.next_message() == REQUEST
    assert decoder.next_message() is None


def test_codec_decoder_close_after_buffered_messages_and_a_partial_one() -> None:
    decoder = Decoder()
    decoder.receive_data(WIRE * 2 + WIRE[:7])
    with pytest.raises(IncompleteMessage) as caught:
        decoder.close()
    error = caught.value
    assert error.messages == [REQUEST, REQUEST]
    assert (error.offset, error.expected, error.received) == (2 * len(WIRE), HEADER_END, 7)


def test_codec_decoder_feed_after_close_is_a_usage_error() -> None:
    decoder = Decoder()
    decoder.feed(WIRE)
    decoder.close()
    decoder.close()  # closing twice is fine
    for call in (lambda: decoder.feed(WIRE), lambda: decoder.receive_data(b"x")):
        with pytest.raises(RuntimeError, match="closed"):
            call()


def test_codec_decoder_error_carries_the_messages_of_the_same_feed() -> None:
    bad = b"\x00\x02{]"
    decoder = Decoder()
    assert decoder.feed(WIRE) == [REQUEST]
    with pytest.raises(HeaderNotJSON) as caught:
        decoder.feed(WIRE + WIRE + bad + WIRE)
    error = caught.value
    assert error.messages == [REQUEST, REQUEST]
    assert error.offset == 3 * len(WIRE)
    assert decoder.offset == 3 * len(WIRE)
    assert str(error).startswith("header-not-json: JSON header: ")
    assert str(error).endswith(f"(message at stream offset {3 * len(WIRE)})")
    assert repr(error).startswith("HeaderNotJSON(")
    with pytest.raises(HeaderNotJSON) as again:
        decoder.feed(b"")
    # Raised again as a copy that hands over nothing; the first error keeps its messages.
    assert again.value.messages == [] and again.value.offset == error.offset
    assert error.messages == [REQUEST, REQUEST] and decoder.error is error


def test_codec_decoder_limit_is_configurable_and_inclusive() -> None:
    message = Message.from_bytes(b"x" * 10)
    assert Decoder(max_content_length=10).feed(message.encode()) == [message]
    with pytest.raises(ContentTooLarge, match="limit of 9 bytes"):
        Decoder(max_content_length=9).feed(message.encode())
    empty = Message.from_bytes(b"")
    assert Decoder(max_content_length=0).feed(empty.encode()) == [empty]


def test_codec_decoder_large_content_split_in_two() -> None:
    message = Message.from_bytes(bytes(range(256)) * 4096)
    wire = message.encode()
    decoder = Decoder()
    assert decoder.feed(wire[:-1]) == []
    assert decoder.bytes_needed == 1
    assert decoder.feed(wire[-1:]) == [message]


def test_codec_decode_all() -> None:
    assert decode_all(WIRE * 2) == [REQUEST, REQUEST]
    assert decode_all(b"") == []
    with pytest.raises(IncompleteMessage) as caught:
        decode_all(WIRE + WIRE[:1])
    assert caught.value.messages == [REQUEST]
    with pytest.raises(ContentTooLarge):
        decode_all(WIRE, max_content_length=1)


def test_codec_parse_header_reports_the_offset_it_is_given() -> None:
    raw = WIRE[2:HEADER_END]
    header, length = parse_header(raw)
    assert header == REQUEST.header and length == len(REQUEST.content)
    with pytest.raises(InvalidHeaderValue) as caught:
        parse_header(raw.replace(b'"little"', b'"LITTLE"'), 1234)
    assert caught.value.offset == 1234
    with pytest.raises(ContentTooLarge):
        parse_header(raw, 0, 40)
    assert parse_header(bytearray(raw)) == (REQUEST.header, len(REQUEST.content))


def test_codec_decoder_errors_are_protocol_errors_with_codes() -> None:
    cases = {
        b"\x00\x00": "zero-header-length",
        b"\x00\x01\xff": "header-not-utf8",
        b"\x00\x01x": "header-not-json",
        b"\x00\x02[]": "header-not-object",
        b"\x00\x02{}": "missing-header-key",
    }
    for data, code in cases.items():
        with pytest.raises(ProtocolError) as caught:
            Decoder().feed(data)
        assert caught.value.code == code and caught.value.offset == 0
