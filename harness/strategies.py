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
import math
import string
from dataclasses import dataclass, field
from typing import Any

from harness._extras import importing
from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.errors import (
    ContentError,
    ContentNotDecodable,
    ContentNotJSON,
    ContentTooLarge,
    DuplicateKey,
    HeaderNotJSON,
    HeaderNotObject,
    HeaderNotUTF8,
    IncompleteMessage,
    InvalidHeaderValue,
    MissingHeaderKey,
    NonFiniteNumber,
    ProtocolError,
    UnsupportedEncoding,
    ZeroHeaderLength,
)
from harness.message import MAX_HEADER_LENGTH, REQUIRED_KEYS, TEXT_ENCODINGS, Message
from harness.strictjson import MAX_DEPTH

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


def json_values(max_leaves: int = 8) -> st.SearchStrategy[Any]:
    """Any strict JSON value: finite numbers, UTF-8-safe strings, nested arrays and objects."""
    return st.recursive(
        _json_scalars,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(_text, children, max_size=4),
        max_leaves=max_leaves,
    )


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
    return message, len(raw).to_bytes(2, "big") + raw + message.content


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

#: The violation classes of docs/PROTOCOL.md#error-codes that a byte stream can show on its own.
VIOLATION_KINDS: dict[str, type[ProtocolError]] = {
    "zero-header-length": ZeroHeaderLength,
    "header-not-utf8": HeaderNotUTF8,
    "header-not-json": HeaderNotJSON,
    "non-finite-number": NonFiniteNumber,
    "duplicate-key": DuplicateKey,
    "header-not-object": HeaderNotObject,
    "missing-header-key": MissingHeaderKey,
    "invalid-header-value": InvalidHeaderValue,
    "content-too-large": ContentTooLarge,
    "incomplete-message": IncompleteMessage,
}


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


def _frame(raw_header: bytes) -> bytes:
    return len(raw_header).to_bytes(2, "big") + raw_header


def _valid_header(draw: st.DrawFn, length: int = 0) -> dict[str, Any]:
    return {
        "byteorder": draw(_byteorders),
        "content-type": draw(st.sampled_from(["text/json", "binary/custom-client-binary-type"])),
        "content-encoding": draw(st.sampled_from(["utf-8", "binary"])),
        "content-length": length,
    }


def _dumps(header: Any) -> str:
    return json.dumps(header, ensure_ascii=False)


_trailing = st.binary(max_size=8)


@st.composite
def _zero_header_length(draw: st.DrawFn) -> Malformed:
    return Malformed(
        "zero-header-length",
        b"\x00\x00" + draw(_trailing),
        ZeroHeaderLength,
        "the 2-byte prefix announces an empty header",
    )


_BAD_UTF8 = [
    b"\xff",
    b"\xfe",
    b"\x80",
    b"\xc0\x80",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82",
]


@st.composite
def _header_not_utf8(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    style = draw(st.sampled_from(["in-string", "bom", "surrogate-escape"]))
    text = _dumps(header)
    if style == "bom":
        raw = b"\xef\xbb\xbf" + text.encode()
        description = "the JSON header starts with a UTF-8 byte order mark"
    elif style == "surrogate-escape":
        escape = draw(st.sampled_from(["\\ud800", "\\udfff", "\\uDBFF", "\\ud83d"]))
        raw = (text[:-1] + f', "x-note": "a{escape}b"}}').encode()
        description = "the JSON header escapes a lone UTF-16 surrogate"
    else:
        bad = draw(st.sampled_from(_BAD_UTF8))
        encoded = text.encode()
        # inside the value of content-type
        at = encoded.index(b'"content-type": "') + len(b'"content-type": "')
        at += draw(st.integers(0, 2))
        raw = encoded[:at] + bad + encoded[at:]
        description = f"the JSON header holds the invalid UTF-8 bytes {bad!r}"
    return Malformed("header-not-utf8", _frame(raw) + draw(_trailing), HeaderNotUTF8, description)


@st.composite
def _header_not_json(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    text = _dumps(header)
    style = draw(st.sampled_from(["truncated", "trailing", "bad-token", "too-deep", "garbage"]))
    if style == "truncated":
        text = text[: draw(st.integers(1, len(text) - 1))]
        description = "the JSON header is cut short"
    elif style == "trailing":
        text += draw(st.sampled_from(["x", ",", "]", "}", "{}", "[]", '"', "0"]))
        description = "the JSON header has data after the object"
    elif style == "bad-token":
        text = text.replace(": ", draw(st.sampled_from([": ,", "= ", " "])), 1)
        description = "the JSON header has a syntax error"
    elif style == "too-deep":
        depth = draw(st.integers(MAX_DEPTH + 1, MAX_DEPTH + 300))
        text = text[:-1] + ', "x-deep": ' + "[" * depth + "]" * depth + "}"
        description = f"the JSON header nests {depth + 1} levels deep (limit {MAX_DEPTH})"
    else:
        text = draw(st.text(string.ascii_letters + " ;=", min_size=1, max_size=40))
        description = "the JSON header is not JSON at all"
    return Malformed("header-not-json", _frame(text.encode()) + draw(_trailing), HeaderNotJSON, description)


@st.composite
def _non_finite(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1E999"]))
    key = draw(st.sampled_from(["content-length", "x-value"]))
    if key == "content-length":
        text = _dumps(header).replace('"content-length": 0', f'"content-length": {literal}')
    else:
        text = _dumps(header)[:-1] + f', "x-value": [{literal}]}}'
    return Malformed(
        "non-finite-number",
        _frame(text.encode()) + draw(_trailing),
        NonFiniteNumber,
        f"the JSON header holds the number {literal}",
    )


@st.composite
def _duplicate_key(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    text = _dumps(header)
    if draw(st.booleans()):
        key = draw(st.sampled_from(REQUIRED_KEYS))
        value = header[key] if draw(st.booleans()) else "other"
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(value)}}}"
    else:
        key = draw(_text)
        text = text[:-1] + f', "x-obj": {{{json.dumps(key)}: 1, {json.dumps(key)}: 2}}}}'
    return Malformed(
        "duplicate-key",
        _frame(text.encode()) + draw(_trailing),
        DuplicateKey,
        f"the JSON header repeats the key {key!r}",
    )


@st.composite
def _not_object(draw: st.DrawFn) -> Malformed:
    value = draw(
        st.one_of(
            st.lists(json_values(3), max_size=3),
            _json_scalars.filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))),
        )
    )
    raw = json.dumps(value, ensure_ascii=False).encode()
    if len(raw) > MAX_HEADER_LENGTH:  # pragma: no cover
        raw = b"[]"
    return Malformed(
        "header-not-object",
        _frame(raw) + draw(_trailing),
        HeaderNotObject,
        f"the JSON header is a {type(value).__name__}",
    )


@st.composite
def _missing_key(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    drop = draw(st.sets(st.sampled_from(REQUIRED_KEYS), min_size=1))
    for key in drop:
        del header[key]
    header.update(draw(extension_headers(2)))
    for key in drop:
        header.pop(key, None)
    return Malformed(
        "missing-header-key",
        _frame(_dumps(header).encode()) + draw(_trailing),
        MissingHeaderKey,
        "the JSON header lacks " + ", ".join(sorted(drop)),
    )


_BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "byteorder": st.sampled_from(["", "middle", "LITTLE", 1, None, True, ["little"]]),
    "content-length": st.one_of(
        st.integers(max_value=-1), st.sampled_from([1.0, 0.5, "10", True, False, None, [1], {"n": 1}])
    ),
    "content-type": st.sampled_from(["", 1, None, False, ["text/json"], {}]),
    "content-encoding": st.sampled_from(["", 0, None, True, ["utf-8"]]),
}


@st.composite
def _invalid_value(draw: st.DrawFn) -> Malformed:
    header = _valid_header(draw)
    key = draw(st.sampled_from(REQUIRED_KEYS))
    header[key] = draw(_BAD_VALUES[key])
    return Malformed(
        "invalid-header-value",
        _frame(_dumps(header).encode()) + draw(_trailing),
        InvalidHeaderValue,
        f"the JSON header sets {key} to {header[key]!r}",
    )


@st.composite
def _too_large(draw: st.DrawFn, max_content_length: int) -> Malformed:
    length = draw(st.integers(max_content_length + 1, max(max_content_length + 1, 2**40)))
    header = _valid_header(draw, length)
    # Some of the content may follow; the error must come from the header alone.
    return Malformed(
        "content-too-large",
        _frame(_dumps(header).encode()) + draw(_trailing),
        ContentTooLarge,
        f"content-length {length} is over the limit of {max_content_length}",
        extra={"content_length": length},
    )


@st.composite
def _incomplete(draw: st.DrawFn) -> Malformed:
    message = draw(messages(max_content_size=2048, extensions=False))
    raw = message.encode()
    cut = draw(st.integers(1, len(raw) - 1))
    header_end = 2 + int.from_bytes(raw[:2], "big")
    if cut < 2:
        expected = 2
    elif cut < header_end:
        expected = header_end
    else:
        expected = len(raw)
    return Malformed(
        "incomplete-message",
        raw[:cut],
        IncompleteMessage,
        f"the stream ends after {cut} of the message's {len(raw)} bytes",
        expected=expected,
        received=cut,
    )


def malformed_messages(
    kinds: str | list[str] | None = None, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
) -> st.SearchStrategy[Malformed]:
    """Bytes holding one violation of docs/PROTOCOL.md, of the given kind(s) (default: all)."""
    builders: dict[str, st.SearchStrategy[Malformed]] = {
        "zero-header-length": _zero_header_length(),
        "header-not-utf8": _header_not_utf8(),
        "header-not-json": _header_not_json(),
        "non-finite-number": _non_finite(),
        "duplicate-key": _duplicate_key(),
        "header-not-object": _not_object(),
        "missing-header-key": _missing_key(),
        "invalid-header-value": _invalid_value(),
        "content-too-large": _too_large(max_content_length),
        "incomplete-message": _incomplete(),
    }
    if kinds is None:
        chosen = list(builders)
    elif isinstance(kinds, str):
        chosen = [kinds]
    else:
        chosen = list(kinds)
    return st.one_of([builders[k] for k in chosen])


@st.composite
def bad_content_messages(draw: st.DrawFn) -> tuple[Message, type[ContentError]]:
    """Well-framed ``text/json`` messages whose content cannot be read as JSON text."""
    style = draw(st.sampled_from(["encoding", "undecodable", "not-json"]))
    if style == "encoding":
        encoding = draw(
            st.sampled_from(["binary", "rot13", "utf-7", "base64", "x-unknown"])
            | st.text(min_size=1, max_size=8).filter(lambda e: e.lower() not in TEXT_ENCODINGS)
        )
        content = b'{"action": "search", "value": "x"}'
        return Message.from_bytes(content, content_type="text/json", encoding=encoding), UnsupportedEncoding
    if style == "undecodable":
        bad = draw(st.sampled_from(_BAD_UTF8))
        content = b'{"action": "search", "value": "' + bad + b'"}'
        return Message.from_bytes(content, content_type="text/json", encoding="utf-8"), ContentNotDecodable
    content = draw(
        st.sampled_from([b"", b"{", b"not json", b'{"a": NaN}', b'{"a": 1, "a": 2}', b"[1,]", b"{} {}"])
    )
    return Message.from_bytes(content, content_type="text/json", encoding="utf-8"), ContentNotJSON
