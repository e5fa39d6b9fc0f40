"""The public Hypothesis strategies produce what they promise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import ERROR_CLASSES, ContentError, Decoder, Message, ProtocolError, decode_all
from harness import strategies as lst
from harness.message import REQUIRED_KEYS


@given(lst.messages())
def test_strategies_messages_are_valid_and_encodable(message: Message) -> None:
    assert Message(message.header, message.content) == message
    assert decode_all(message.encode()) == [message]


@given(lst.search_requests())
def test_strategies_search_requests(message: Message) -> None:
    if message.is_json:
        assert set(message.json()) == {"action", "value"}
    else:
        assert message.content_type == "binary/custom-client-binary-type"


@settings(max_examples=60)
@given(lst.wire_messages())
def test_strategies_wire_messages_decode_to_their_message(pair: tuple[Message, bytes]) -> None:
    message, wire = pair
    assert decode_all(wire) == [message]


@settings(max_examples=40)
@given(lst.streams())
def test_strategies_streams_hold_their_messages(stream: lst.Stream) -> None:
    assert decode_all(stream.data) == stream.messages


@given(st.binary(max_size=300), st.data())
def test_strategies_chunkings_concatenate_to_the_payload(payload: bytes, data: st.DataObject) -> None:
    chunks = data.draw(lst.chunkings(payload))
    assert b"".join(chunks) == payload


def test_strategies_violation_kinds_cover_every_stream_error() -> None:
    stream_errors = {code for code, cls in ERROR_CLASSES.items() if not issubclass(cls, ContentError)}
    assert set(lst.VIOLATION_KINDS) == stream_errors
    for kind, cls in lst.VIOLATION_KINDS.items():
        assert cls.code == kind


@pytest.mark.parametrize("kind", list(lst.VIOLATION_KINDS))
@settings(max_examples=20)
@given(data=st.data())
def test_strategies_malformed_messages_raise_their_error(kind: str, data: st.DataObject) -> None:
    malformed = data.draw(lst.malformed_messages(kind))
    assert malformed.kind == kind and malformed.error is lst.VIOLATION_KINDS[kind]
    assert malformed.description
    decoder = Decoder()
    with pytest.raises(ProtocolError) as caught:
        decoder.feed(malformed.data)
        decoder.close()
    assert type(caught.value) is malformed.error
    if kind == "incomplete-message":
        assert (caught.value.expected, caught.value.received) == (  # type: ignore[attr-defined]
            malformed.expected,
            malformed.received,
        )


@given(lst.extension_headers())
def test_strategies_extension_headers_never_set_required_keys(extra: dict[str, object]) -> None:
    assert not set(extra) & set(REQUIRED_KEYS)
    Message.from_bytes(b"", extra_headers=extra).encode()
