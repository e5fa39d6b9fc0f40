"""Framing properties of harness.Decoder and Message.encode (``pytest -k framing``).

Every test here generates its input: valid streams split anywhere, arbitrary and
mutated bytes, every violation class of docs/PROTOCOL.md, and checks that the outcome
(messages, then error class, offset and counts) never depends on the chunking.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from codec_helpers import (
    any_bytes,
    byte_by_byte,
    decoder_outcome,
    framed_messages,
    split_at,
    typed,
    typed_outcome,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_decoder import Outcome
from reference_decoder import check_header as reference_check_header

from harness import (
    ContentError,
    ContentTooLarge,
    Decoder,
    DecoderState,
    IncompleteMessage,
    Message,
    ProtocolError,
    ZeroHeaderLength,
)
from harness import strategies as lst
from harness.header import parse_header, parse_header_strict
from harness.message import REQUIRED_KEYS
from harness.vectors import GUIDE_EXCHANGES

HEADER_KINDS = [kind for kind in lst.VIOLATION_KINDS if kind != "incomplete-message"]


def expected_outcome(messages: list[Message]) -> Outcome:
    return Outcome([(m.header, m.content) for m in messages], None, None)


# -- valid streams, any split ------------------------------------------------------------


@given(lst.streams(), st.data())
def test_framing_split_anywhere_yields_same_messages(stream: lst.Stream, data: st.DataObject) -> None:
    chunks = data.draw(lst.chunkings(stream.data))
    api = data.draw(st.sampled_from(["feed", "next", "lazy"]))
    outcome = decoder_outcome(chunks, api=api)
    assert typed_outcome(outcome, False) == typed_outcome(expected_outcome(stream.messages), False)


@given(framed_messages(max_size=3, max_content_size=600))
def test_framing_byte_by_byte_yields_same_messages(framed: tuple[list[Message], list[bytes]]) -> None:
    messages, parts = framed
    data = b"".join(parts)
    got = decoder_outcome(byte_by_byte(data))
    assert typed_outcome(got, False) == typed_outcome(expected_outcome(messages), False)


@settings(max_examples=25)
@given(framed_messages(min_size=1, max_size=3, max_content_size=200))
def test_framing_every_single_cut_yields_same_messages(framed: tuple[list[Message], list[bytes]]) -> None:
    messages, parts = framed
    data = b"".join(parts)
    want = typed_outcome(expected_outcome(messages), False)
    for cut in range(len(data) + 1):
        assert typed_outcome(decoder_outcome([data[:cut], data[cut:]]), False) == want, cut


@given(framed_messages(min_size=1), st.data())
def test_framing_feed_returns_each_message_when_its_last_byte_arrives(
    framed: tuple[list[Message], list[bytes]], data: st.DataObject
) -> None:
    _, parts = framed
    stream = b"".join(parts)
    ends = [sum(map(len, parts[: i + 1])) for i in range(len(parts))]
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    decoder = Decoder()
    position = 0
    done = 0
    for chunk in split_at(stream, cuts):
        got = decoder.feed(chunk)
        position += len(chunk)
        completes = sum(1 for end in ends if end <= position) - done
        assert len(got) == completes
        done += completes
        assert decoder.offset == (ends[done - 1] if done else 0)
    decoder.close()
    assert decoder.state is DecoderState.CLOSED


# -- arbitrary and mutated bytes ---------------------------------------------------------


@given(any_bytes, st.integers(0, 400), st.data())
def test_framing_any_bytes_same_outcome_whole_and_chunked(
    data: bytes, max_content_length: int, draw: st.DataObject
) -> None:
    whole = decoder_outcome([data], max_content_length)
    chunks = draw.draw(lst.chunkings(data))
    api = draw.draw(st.sampled_from(["feed", "next", "lazy"]))
    assert typed_outcome(decoder_outcome(chunks, max_content_length, api)) == typed_outcome(whole)
    assert typed_outcome(decoder_outcome(byte_by_byte(data), max_content_length)) == typed_outcome(whole)


@given(any_bytes)
def test_framing_only_protocol_errors_escape_and_messages_round_trip(data: bytes) -> None:
    """Whatever the bytes: ProtocolError or messages; each message re-encodes to itself,
    and reading its content raises nothing but a ContentError."""
    outcome = decoder_outcome(byte_by_byte(data))  # anything but ProtocolError propagates
    for header, content in outcome.messages:
        message = Message(header, content)
        again = Decoder().feed(message.encode())
        assert [(typed(m.header, False), m.content) for m in again] == [(typed(header, False), content)]
        with contextlib.suppress(ContentError):
            message.json()


# -- round trip and the wire vectors -----------------------------------------------------


@given(lst.messages())
def test_framing_encode_decode_round_trip(message: Message) -> None:
    wire = message.encode()
    decoder = Decoder()
    (decoded,) = decoder.feed(wire)
    decoder.close()
    assert typed(decoded.header) == typed(message.header)
    assert decoded.content == message.content
    assert decoded == message
    assert decoded.encode() == wire
    # The guide's encoder: json.dumps(header, ensure_ascii=False), required keys in its order.
    ordered = {key: message.header[key] for key in REQUIRED_KEYS} | message.header
    raw = json.dumps(ordered, ensure_ascii=False).encode()
    assert wire == len(raw).to_bytes(2, "big") + raw + message.content


# From docs/PROTOCOL.md#wire-vectors: captured from the guide's own client and server.
MORPHEUS, NEEDLE, BINARY = (GUIDE_EXCHANGES[k] for k in ("morpheus", "needle", "binary"))
WIRE_VECTORS: list[tuple[bytes, Message]] = [
    (MORPHEUS[0], Message.from_json({"action": "search", "value": "morpheus"}, byteorder="little")),
    (MORPHEUS[1], Message.from_json({"result": "Follow the white rabbit. 🐰"}, byteorder="little")),
    (NEEDLE[0], Message.from_json({"action": "search", "value": "needle"}, byteorder="little")),
    (NEEDLE[1], Message.from_json({"result": "No match for 'needle'."}, byteorder="little")),
    (BINARY[0], Message.from_bytes("binary😃".encode(), byteorder="little")),
    (
        BINARY[1],
        Message.from_bytes(
            b"First 10 bytes of request: " + "binary😃".encode(),
            content_type="binary/custom-server-binary-type",
            byteorder="little",
        ),
    ),
]


@pytest.mark.parametrize(("wire", "message"), WIRE_VECTORS)
def test_framing_protocol_wire_vectors_byte_for_byte(wire: bytes, message: Message) -> None:
    assert message.encode() == wire
    for chunks in ([wire], byte_by_byte(wire)):
        outcome = decoder_outcome(chunks)
        assert outcome == Outcome([(message.header, message.content)], None, None)
        assert list(outcome.messages[0][0]) == list(REQUIRED_KEYS)  # key order as received
    if message.is_json:
        assert Message(*outcome.messages[0]).json() == json.loads(message.content)


def test_framing_wire_vectors_pipelined_on_one_stream() -> None:
    stream = b"".join(wire for wire, _ in WIRE_VECTORS)
    want = [(m.header, m.content) for _, m in WIRE_VECTORS]
    for cut_size in (1, 2, 3, 7, 64, 100, 4096):
        assert decoder_outcome(split_at(stream, range(cut_size, len(stream), cut_size))).messages == want


# -- streams cut short --------------------------------------------------------------------


@given(framed_messages(min_size=1), st.data())
def test_framing_stream_cut_short_raises_incomplete_on_close(
    framed: tuple[list[Message], list[bytes]], data: st.DataObject
) -> None:
    messages, parts = framed
    last = data.draw(st.integers(0, len(parts) - 1))
    start = sum(map(len, parts[:last]))
    part = parts[last]
    received = data.draw(st.integers(1, len(part) - 1))
    header_end = 2 + int.from_bytes(part[:2], "big")
    expected = 2 if received < 2 else header_end if received < header_end else len(part)
    stream = b"".join(parts)[: start + received]
    chunks = data.draw(lst.chunkings(stream))
    outcome = decoder_outcome(chunks, api=data.draw(st.sampled_from(["feed", "next", "lazy"])))
    before = [(m.header, m.content) for m in messages[:last]]
    want = Outcome(before, "incomplete-message", start, expected, received)
    assert typed_outcome(outcome, False) == typed_outcome(want, False)


# -- every violation class --------------------------------------------------------------


@given(lst.malformed_messages(), framed_messages(max_size=3, max_content_size=500), st.booleans())
def test_framing_each_violation_after_valid_messages(
    malformed: lst.Malformed, framed: tuple[list[Message], list[bytes]], trickle: bool
) -> None:
    messages, parts = framed
    prefix = b"".join(parts)
    data = prefix + malformed.data
    outcome = decoder_outcome(byte_by_byte(data) if trickle else [data])
    assert outcome.code == malformed.error.code, malformed.description
    assert outcome.offset == len(prefix)
    assert typed(outcome.messages, False) == typed([(m.header, m.content) for m in messages], False)
    if malformed.kind == "incomplete-message":
        assert (outcome.expected, outcome.received) == (malformed.expected, malformed.received)


@pytest.mark.parametrize("kind", list(lst.VIOLATION_KINDS))
@settings(max_examples=15)
@given(data=st.data())
def test_framing_every_violation_kind_alone_whole_and_byte_by_byte(kind: str, data: st.DataObject) -> None:
    malformed = data.draw(lst.malformed_messages(kind))
    for chunks in ([malformed.data], byte_by_byte(malformed.data)):
        outcome = decoder_outcome(chunks)
        assert (outcome.messages, outcome.code, outcome.offset) == ([], malformed.error.code, 0)


@given(lst.malformed_messages(HEADER_KINDS))
def test_framing_header_violation_raised_on_the_byte_that_completes_the_header(
    malformed: lst.Malformed,
) -> None:
    """No violation waits for content: zero-length fails on the prefix's 2nd byte, every
    other header violation (content-too-large included) on the header's last byte."""
    decoder = Decoder()
    header_length = int.from_bytes(malformed.data[:2], "big")
    last = 1 if header_length == 0 else 1 + header_length
    for i in range(last):
        assert decoder.feed(malformed.data[i : i + 1]) == []
    assert decoder.buffered == last
    with pytest.raises(malformed.error) as caught:
        decoder.feed(malformed.data[last : last + 1])
    assert caught.value.offset == 0
    assert decoder.state is DecoderState.FAILED


@given(lst.malformed_messages("content-too-large", max_content_length=1000))
def test_framing_content_too_large_before_any_content_is_buffered(malformed: lst.Malformed) -> None:
    header_end = 2 + int.from_bytes(malformed.data[:2], "big")
    decoder = Decoder(max_content_length=1000)
    with pytest.raises(ContentTooLarge) as caught:
        decoder.feed(malformed.data[:header_end])
    assert caught.value.offset == 0
    assert "1000" in caught.value.reason
    assert decoder.buffered == header_end  # nothing of the content was waited for


@given(lst.malformed_messages([k for k in lst.VIOLATION_KINDS if k != "incomplete-message"]), st.data())
def test_framing_decoder_stays_failed_after_an_error(malformed: lst.Malformed, data: st.DataObject) -> None:
    decoder = Decoder()
    before = Message.from_json({"action": "search", "value": "ring"})
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(before.encode() + malformed.data)
        decoder.close()
    error = caught.value
    assert isinstance(error, malformed.error)
    assert decoder.state is DecoderState.FAILED and decoder.error is error
    first_messages = list(error.messages)
    assert first_messages == [before]
    more = data.draw(st.sampled_from([b"", Message.from_json({"a": 1}).encode(), b"\x00"]))
    calls: list[Any] = [
        lambda: decoder.feed(more),
        lambda: decoder.receive_data(more),
        decoder.next_message,
        decoder.close,
    ]
    for call in data.draw(st.permutations(calls)):
        with pytest.raises(ProtocolError) as again:
            call()
        # A copy of the first error, with no messages; the original keeps its own.
        assert type(again.value) is type(error) and again.value is not error
        assert (again.value.offset, again.value.reason) == (error.offset, error.reason)
        assert again.value.messages == [] and again.value.__cause__ is error
        assert error.messages == first_messages
        assert decoder.state is DecoderState.FAILED


def test_framing_incomplete_counts_for_each_piece() -> None:
    wire = WIRE_VECTORS[0][0]
    header_end = 2 + wire[1]
    for cut, expected, piece in [
        (1, 2, "header length"),
        (2, header_end, "JSON header"),
        (header_end - 1, header_end, "JSON header"),
        (header_end, len(wire), "content"),
        (len(wire) - 1, len(wire), "content"),
    ]:
        decoder = Decoder()
        assert decoder.feed(wire + wire[:cut]) != []
        with pytest.raises(IncompleteMessage) as caught:
            decoder.close()
        error = caught.value
        assert (error.offset, error.expected, error.received) == (len(wire), expected, cut)
        assert piece in error.reason and f"needs {expected} bytes, {cut} came" in error.reason


def test_framing_zero_header_length_needs_only_the_prefix() -> None:
    decoder = Decoder()
    valid = WIRE_VECTORS[2][0]
    decoder.feed(valid)
    assert decoder.feed(b"\x00") == []
    with pytest.raises(ZeroHeaderLength) as caught:
        decoder.feed(b"\x00")
    assert caught.value.offset == len(valid)


# -- fast and strict header parsing agree -------------------------------------------------


_extension_values = st.one_of(
    lst.json_values(6),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([1.0, -0.0, 0.0, 1e308, 5e-324, 2**53 + 1, "a:b", "\\", '"', "\u2028", "🐶", ""]),
)


@st.composite
def header_texts(draw: st.DrawFn) -> bytes:
    """JSON headers in many textual styles, valid and subtly not."""
    header: dict[str, Any] = {
        "byteorder": draw(st.sampled_from(["little", "big"])),
        "content-type": draw(st.sampled_from(["text/json", "binary/x", "a:b", "é"]) | st.text(max_size=6)),
        "content-encoding": draw(st.sampled_from(["utf-8", "binary", "x"]) | st.text(max_size=4)),
        "content-length": draw(
            st.integers(0, 2000) | st.sampled_from([-1, 1.0, 0.0, True, False, None, "1", 2**64, 10**30, [1]])
        ),
    }
    for key in draw(st.lists(st.sampled_from(REQUIRED_KEYS), max_size=1, unique=True)):
        del header[key]  # sometimes a key is missing
    extensions = draw(st.dictionaries(st.text(max_size=6), _extension_values, max_size=3))
    for key, value in extensions.items():
        header.setdefault(key, value)
    keys = draw(st.permutations(list(header)))
    ordered = {key: header[key] for key in keys}
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t"), (",\r\n", ":  ")]))
    text = json.dumps(
        ordered,
        ensure_ascii=draw(st.booleans()),
        indent=draw(st.sampled_from([None, 0, 2])),
        separators=separators,
    )
    style = draw(st.sampled_from(["plain", "plain", "escape-key", "duplicate", "space", "slash", "upper"]))
    if style == "escape-key":  # "content-length" spelled "content\u002dlength"
        text = text.replace("-", "\\u002d", 1)
    elif style == "duplicate" and ordered:
        key = draw(st.sampled_from(list(ordered)))
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(ordered[key])}}}"
    elif style == "space":
        text = draw(st.sampled_from([" ", "\n", "\t\r\n"])) + text + draw(st.sampled_from([" ", "\n"]))
    elif style == "slash":
        text = text.replace("/", "\\/")
    elif style == "upper":
        text = text.replace("e", "E")  # inside numbers, a valid exponent; elsewhere, breaks it
    return text.encode("utf-8", "surrogatepass")


def _verdict(parse: Any, raw: bytes, limit: int) -> Any:
    try:
        header, length = parse(raw, 7, limit)
    except ProtocolError as error:
        assert error.offset == 7
        return type(error).code
    assert header["content-length"] == length
    return typed(header)


@given(header_texts(), st.sampled_from([0, 100, 1 << 20]))
def test_framing_fast_and_strict_header_parsing_agree(raw: bytes, limit: int) -> None:
    fast = _verdict(parse_header, raw, limit)
    strict = _verdict(parse_header_strict, raw, limit)
    assert fast == strict
    code, header = reference_check_header(raw, limit)
    assert (code if code is not None else typed(header)) == fast
