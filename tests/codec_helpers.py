"""Helpers for the codec tests: run harness.Decoder over chunks and describe the outcome.

The outcome has the same shape as :class:`reference_decoder.Outcome`, so the
decoder, the decoder fed differently, and the reference decoder can be compared
with one ``==``. Values are compared with their types (``1``, ``1.0`` and
``True`` are equal in Python, not on the wire).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import strategies as st
from reference_decoder import Outcome

from harness import ERROR_CLASSES, Decoder, IncompleteMessage, Message, ProtocolError
from harness import strategies as lst


def typed(value: Any, ordered: bool = True) -> Any:
    """``value`` with every scalar tagged by its type; dict key order kept if ``ordered``."""
    if isinstance(value, dict):
        items = [(key, typed(item, ordered)) for key, item in value.items()]
        return ("dict", items if ordered else sorted(items, key=lambda pair: pair[0]))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, [typed(item, ordered) for item in value])
    if isinstance(value, float):
        return ("float", repr(value))
    return (type(value).__name__, value)


def typed_outcome(outcome: Outcome, ordered: bool = True) -> Outcome:
    """``outcome`` with typed headers; ``ordered=False`` where the expected messages come
    from Message objects whose wire form wrote the keys in another order."""
    return outcome._replace(
        messages=[(typed(header, ordered), content) for header, content in outcome.messages]
    )


def pairs(messages: Iterable[Message]) -> list[tuple[dict[str, Any], bytes]]:
    return [(message.header, message.content) for message in messages]


def decoder_outcome(chunks: Iterable[bytes], max_content_length: int = 1 << 20, api: str = "feed") -> Outcome:
    """Feed ``chunks`` to a fresh Decoder, then close it; describe what came out.

    ``api`` is ``"feed"`` (Decoder.feed), ``"next"`` (receive_data then
    next_message until None after every chunk) or ``"lazy"`` (receive_data only,
    the messages taken with next_message after close()). Any exception other
    than a ProtocolError propagates, and fails the test that called this.
    """
    decoder = Decoder(max_content_length)
    got: list[Message] = []
    try:
        for chunk in chunks:
            if api == "feed":
                got += decoder.feed(chunk)
            else:
                decoder.receive_data(chunk)
                if api == "next":
                    while (message := decoder.next_message()) is not None:
                        got.append(message)
        decoder.close()
        while (message := decoder.next_message()) is not None:
            got.append(message)
    except ProtocolError as error:
        assert ERROR_CLASSES[error.code] is type(error), error
        assert decoder.error is error
        got += error.messages
        if isinstance(error, IncompleteMessage):
            return Outcome(pairs(got), error.code, error.offset, error.expected, error.received)
        return Outcome(pairs(got), error.code, error.offset)
    return Outcome(pairs(got), None, None)


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = sorted(cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# -- strategies shared by the framing tests ---------------------------------------------


@st.composite
def framed_messages(
    draw: st.DrawFn, min_size: int = 0, max_size: int = 5, max_content_size: int = 3000
) -> tuple[list[Message], list[bytes]]:
    """Valid messages and the bytes of each, headers written in varied valid styles."""
    messages = draw(
        st.lists(lst.messages(max_content_size=max_content_size), min_size=min_size, max_size=max_size)
    )
    return messages, [draw(lst.wire_messages(message))[1] for message in messages]


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """A valid stream with a few byte-level mutations: mostly valid, sometimes not."""
    _, parts = draw(framed_messages(max_size=4, max_content_size=300))
    data = bytearray(b"".join(parts))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "splice"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and at < len(data):
            data[at] = draw(st.sampled_from([0, 0xFF, ord("{"), ord('"'), ord(":"), ord(","), ord("\\")]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            data[at:at] = draw(lst.malformed_messages()).data
    return bytes(data)


any_bytes = st.one_of(st.binary(max_size=400), mutated_streams())
