"""Hypothesis strategies for lpjson: messages, streams, malformed input, chunkings.

Use them to drive any codec or server, not just ours::

    from hypothesis import given
    from harness import strategies as lst

    @given(lst.streams(), lst.data())
    def test_my_server(stream, data):
        chunks = data.draw(lst.chunkings(stream.data))
        ...

Every strategy here builds its bytes with :meth:`harness.Message.encode` or
from documented rules, never by re-implementing the decoder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from harness._extras import importing
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.errors import ContentError, ProtocolError
from harness.frames import frame
from harness.message import MAX_HEADER_LENGTH, REQUIRED_KEYS, TEXT_ENCODINGS, Message
from harness.violations import VIOLATIONS, Violation, content_violations, stream_violations

with importing("harness.strategies", "hypothesis"):
    from hypothesis import strategies as st

__all__ = [
    "VIOLATION_KINDS",
    "Malformed",
    "Stream",
    "bad_content_messages",
    "binary_contents",
    "chunkings",
    "data",
    "extension_headers",
    "json_values",
    "malformed_messages",
    "messages",
    "search_requests",
    "streams",
    "wire_messages",
]

data = st.data  # re-exported for convenience in tests

# The functions below that take only hashable arguments return one strategy object per
# argument tuple (lru_cache): composites draw from them on every example, and a new
# strategy object is validated again on its first draw, which cost more than the draws.

# -- JSON values ------------------------------------------------------------

#: Text that survives a UTF-8 round trip (no lone surrogates).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
)


@cache
def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any strict JSON value: finite numbers, UTF-8-safe strings, nested arrays and objects."""
    return st.recursive(
        _json_scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
        max_leaves=max_leaves,
    )


@cache
def extension_headers(max_size: int = 3) -> st.SearchStrategy[dict[str, Any]]:
    """Extra header keys (never one of the required keys) with any JSON values."""
    keys = _text.filter(lambda k: k not in REQUIRED_KEYS)
    return st.dictionaries(keys, json_values(4), max_size=max_size)


# -- valid messages -----------------------------------------------------------

_content_types = st.sampled_from(
    [
        "text/json",
        "binary/custom-client-binary-type",
        "binary/custom-server-binary-type",
        "application/octet-stream",
        "image/png",
    ]
) | st.text(min_size=1, max_size=12)
_encodings = st.sampled_from(["binary", "utf-8", "utf-16", "latin-1"]) | st.text(min_size=1, max_size=8)
_byteorders = st.sampled_from(["little", "big"])


@cache
def binary_contents(max_size: int = 2048, large: int = 200_000) -> st.SearchStrategy[bytes]:
    """Content bytes: mostly small, sometimes empty, now and then up to ``large`` bytes."""
    big = st.tuples(st.integers(max_size, large), st.binary(min_size=1, max_size=16)).map(
        lambda t: (t[1] * (t[0] // len(t[1]) + 1))[: t[0]]
    )
    return (
        st.one_of(st.just(b""), st.binary(max_size=max_size), big)
        if large > max_size
        else (st.just(b"") | st.binary(max_size=max_size))
    )


@st.composite
def _json_message(draw: st.DrawFn, extensions: bool) -> Message:
    encoding = draw(st.sampled_from(sorted(TEXT_ENCODINGS)))
    value = draw(json_values())
    if encoding in ("ascii", "latin-1"):
        # Keep the text encodable: json.dumps escapes what ensure_ascii leaves out.
        content = json.dumps(value, ensure_ascii=True).encode(encoding)
    else:
        content = json.dumps(value, ensure_ascii=False).encode(encoding)
    return Message.from_bytes(
        content,
        content_type="text/json",
        encoding=encoding,
        byteorder=draw(_byteorders),
        extra_headers=draw(extension_headers()) if extensions else None,
    )


@st.composite
def _binary_message(draw: st.DrawFn, extensions: bool, max_content_size: int) -> Message:
    return Message.from_bytes(
        draw(binary_contents(max_size=min(2048, max_content_size), large=max_content_size)),
        content_type=draw(_content_types),
        encoding=draw(_encodings),
        byteorder=draw(_byteorders),
        extra_headers=draw(extension_headers()) if extensions else None,
    )


@cache
def search_requests() -> st.SearchStrategy[Message]:
    """Requests of the search application: searches (hits and misses), other actions, binary."""
    value = st.sampled_from(["morpheus", "ring", "🐶", "needle"]) | _text
    search = st.builds(lambda v: Message.from_json({"action": "search", "value": v}), value)
    other = st.builds(
        lambda a, v: Message.from_json({"action": a, "value": v}),
        _text.filter(lambda a: a != "search"),
        value,
    )
    binary = st.builds(lambda a, v: Message.from_bytes((a + v).encode()), _text, value)
    return search | other | binary


@cache
def messages(*, extensions: bool = True, max_content_size: int = 200_000) -> st.SearchStrategy[Message]:
    """Any valid message: ``text/json`` in every allowed encoding, binary of any type,
    empty and large contents, extension headers."""
    return st.one_of(
        _json_message(extensions),
        _binary_message(extensions, max_content_size),
        search_requests(),
    )


@st.composite
def wire_messages(draw: st.DrawFn, message: Message | None = None) -> tuple[Message, bytes]:
    """A message and valid bytes for it, with the JSON header written in any valid style
    (key order, whitespace, ASCII escapes), not only the guide's."""
    if message is None:
        message = draw(messages(max_content_size=4096))
    keys = draw(st.permutations(list(message.header)))
    header = {k: message.header[k] for k in keys}
    separators = draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,\n", " :\t"), (",\r\n", ":  ")]))
    indent = draw(st.sampled_from([None, None, 0, 2]))
    text = json.dumps(
        header, ensure_ascii=draw(st.booleans()), indent=indent, separators=separators, allow_nan=False
    )
    text = draw(st.sampled_from(["", " ", "\n", "\t"])) + text + draw(st.sampled_from(["", " ", "\r\n"]))
    raw = text.encode("utf-8")
    if len(raw) > MAX_HEADER_LENGTH:  # pragma: no cover - headers drawn here are small
        return message, message.encode()
    return message, frame(raw, message.content)


@dataclass(frozen=True)
class Stream:
    """A valid byte stream and the messages it holds."""

    messages: list[Message]
    data: bytes


@st.composite
def streams(
    draw: st.DrawFn,
    min_size: int = 0,
    max_size: int = 8,
    message_strategy: st.SearchStrategy[Message] | None = None,
) -> Stream:
    """Valid messages back to back, headers written in varied valid styles."""
    msgs = draw(
        st.lists(
            message_strategy if message_strategy is not None else messages(max_content_size=50_000),
            min_size=min_size,
            max_size=max_size,
        )
    )
    parts = [draw(wire_messages(m))[1] for m in msgs]
    return Stream(msgs, b"".join(parts))


# -- chunkings ---------------------------------------------------------------


@st.composite
def chunkings(draw: st.DrawFn, payload: bytes, max_chunks: int = 64) -> list[bytes]:
    """``payload`` cut into chunks whose concatenation is ``payload``.

    Shrinks towards one chunk; covers every cut position, empty chunks, and
    one byte at a time.
    """
    n = len(payload)
    mode = draw(st.sampled_from(["cuts", "cuts", "bytes", "fixed"]))
    if mode == "bytes" and n <= 4096:
        chunks = [payload[i : i + 1] for i in range(n)]
    elif mode == "fixed" and n:
        size = draw(st.integers(1, max(1, n)))
        chunks = [payload[i : i + size] for i in range(0, n, size)]
    else:
        cuts = sorted(draw(st.lists(st.integers(0, n), max_size=max_chunks)))
        chunks = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, n], strict=True)]
    if draw(st.booleans()):
        # sprinkle empty chunks
        for _ in range(draw(st.integers(1, 3))):
            chunks.insert(draw(st.integers(0, len(chunks))), b"")
    return chunks


# -- malformed input -----------------------------------------------------------
#
# The violations themselves live in one table (harness.violations): one row per error
# code, with the generator drawn here.

#: The violation classes of docs/PROTOCOL.md that a byte stream can show on its own.
VIOLATION_KINDS: dict[str, type[ProtocolError]] = {row.code: row.error for row in stream_violations()}


@dataclass(frozen=True)
class Malformed:
    """Bytes that break the protocol, and how.

    ``data`` starts with the offending message, whose first byte is the
    error's offset (add the length of anything sent before it). For
    ``incomplete-message`` the error comes from ``close()``, with
    ``expected`` and ``received`` set.
    """

    kind: str
    data: bytes
    error: type[ProtocolError]
    description: str
    expected: int | None = None
    received: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@st.composite
def _malformed(draw: st.DrawFn, row: Violation, max_content_length: int) -> Malformed:
    example = row.generate(draw, max_content_length=max_content_length)
    return Malformed(
        row.code,
        example.data,
        row.error,
        example.description,
        example.expected,
        example.received,
        dict(example.extra),
    )


def malformed_messages(
    kinds: str | list[str] | None = None, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
) -> st.SearchStrategy[Malformed]:
    """Bytes holding one violation of docs/PROTOCOL.md, of the given kind(s) (default: all)."""
    if kinds is None:
        chosen = list(VIOLATION_KINDS)
    elif isinstance(kinds, str):
        chosen = [kinds]
    else:
        chosen = list(kinds)
    unknown = [kind for kind in chosen if kind not in VIOLATION_KINDS]
    if unknown or not chosen:
        raise ValueError(
            f"malformed_messages: no stream violation {', '.join(map(repr, unknown)) or '(none given)'} "
            f"(kinds: {', '.join(VIOLATION_KINDS)}; content errors: bad_content_messages())"
        )
    return st.one_of([_malformed(VIOLATIONS[kind], max_content_length) for kind in chosen])


@st.composite
def _bad_content(draw: st.DrawFn, row: Violation) -> tuple[Message, type[ContentError]]:
    example = row.generate(draw)
    assert example.message is not None and issubclass(row.error, ContentError)
    return example.message, row.error


def bad_content_messages() -> st.SearchStrategy[tuple[Message, type[ContentError]]]:
    """Well-framed ``text/json`` messages whose content cannot be read as JSON text."""
    return st.one_of([_bad_content(row) for row in content_violations()])
