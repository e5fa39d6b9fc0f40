"""Independent check: harness.Decoder against the naive reference decoder (``-k framing``).

The reference (tests/reference_decoder.py) reads whole streams with plain
slicing and the standard library's ``json``; it shares no code with the
codec. Both must report the same messages (headers with their value types and
key order, contents), the same error code, offset and counts.
"""

from __future__ import annotations

import pytest
from codec_helpers import any_bytes, byte_by_byte, decoder_outcome, framed_messages, typed_outcome
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_decoder import decode_stream, nesting_depth

from harness import strategies as lst


def assert_same(
    chunks: list[bytes], data: bytes, max_content_length: int = 1 << 20, api: str = "feed"
) -> None:
    ours = typed_outcome(decoder_outcome(chunks, max_content_length, api))
    reference = typed_outcome(decode_stream(data, max_content_length))
    assert ours == reference, f"input: {data!r}"


@given(lst.streams(), st.data())
def test_framing_reference_agrees_on_valid_streams_with_random_cuts(
    stream: lst.Stream, data: st.DataObject
) -> None:
    chunks = data.draw(lst.chunkings(stream.data))
    assert_same(chunks, stream.data, api=data.draw(st.sampled_from(["feed", "next", "lazy"])))


@given(any_bytes, st.integers(0, 300), st.data())
def test_framing_reference_agrees_on_arbitrary_and_mutated_bytes(
    data: bytes, max_content_length: int, draw: st.DataObject
) -> None:
    assert_same(draw.draw(lst.chunkings(data)), data, max_content_length)


@pytest.mark.parametrize("kind", list(lst.VIOLATION_KINDS))
@settings(max_examples=20)
@given(data=st.data())
def test_framing_reference_agrees_on_every_violation_whole_and_byte_by_byte(
    kind: str, data: st.DataObject
) -> None:
    malformed = data.draw(lst.malformed_messages(kind))
    _, parts = data.draw(framed_messages(max_size=2, max_content_size=300))
    stream = b"".join(parts) + malformed.data
    reference = decode_stream(stream)
    assert reference.code == malformed.error.code, malformed.description
    assert reference.offset == len(stream) - len(malformed.data)
    assert_same([stream], stream)
    assert_same(byte_by_byte(stream), stream)


@given(lst.malformed_messages("content-too-large", max_content_length=50), st.integers(0, 60))
def test_framing_reference_agrees_on_limits(malformed: lst.Malformed, limit: int) -> None:
    assert_same([malformed.data], malformed.data, limit)


def test_reference_nesting_depth_ignores_brackets_in_strings() -> None:
    assert nesting_depth('[["[[[", {"a": "\\"]"}]]') == 3
    assert nesting_depth("{}") == 1
    assert nesting_depth('"{"') == 0
