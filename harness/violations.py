"""One table of violations: every error code of the protocol, one row each.

A row (:class:`Violation`) holds the error ``code`` and its class, the rule of
``docs/PROTOCOL.md`` it breaks (an id of :data:`harness.spec.RULES`), a one-line
``summary``, one canonical :class:`Example` (the exact bytes, checked against
the codec by the tests) and one ``generate`` function that draws varied examples
from a Hypothesis ``draw`` function.

Everything that needs examples of broken input reads this table: the Hypothesis
strategies (:func:`harness.strategies.malformed_messages`,
:func:`~harness.strategies.bad_content_messages`), the sample captures, the
probe's violation checks, the fuzz seed corpus and the dissector tests. Adding a
violation class means a class in :mod:`harness.errors`, the codec raising it, and
a row here.

Framing and header rows (``is_content`` false) hold bytes that break the stream:
the codec raises while decoding them (``incomplete-message``: when the stream ends
after them). Content rows hold one whole, well-framed ``text/json`` message whose
content cannot be read: the codec decodes it, :meth:`harness.Message.json` raises.

Importing this module does not import Hypothesis: the generators import it when
they are called (they are only ever called with a Hypothesis ``draw``).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder
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
from harness.frames import frame
from harness.message import MAX_HEADER_LENGTH, REQUIRED_KEYS, TEXT_ENCODINGS, Message
from harness.spec import RULES, cite
from harness.strictjson import MAX_DEPTH

if TYPE_CHECKING:
    from hypothesis.strategies import DrawFn

__all__ = [
    "VIOLATIONS",
    "Example",
    "Generator",
    "Violation",
    "content_violations",
    "first_error",
    "stream_violations",
]


@dataclass(frozen=True, slots=True)
class Example:
    """Bytes that break the protocol, and what is wrong with them.

    ``data`` starts with the offending message. For ``incomplete-message``,
    ``expected`` and ``received`` are the values the error carries when the
    stream ends after ``data``. For a content row, ``message`` is the
    well-framed message whose encoding ``data`` is.
    """

    data: bytes
    description: str
    expected: int | None = None
    received: int | None = None
    message: Message | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class Generator(Protocol):
    """A function of Hypothesis' ``draw`` that returns one :class:`Example` of a row."""

    def __call__(self, draw: DrawFn, *, max_content_length: int = ...) -> Example: ...


@dataclass(frozen=True, slots=True)
class Violation:
    """One row of the table: an error code, the rule it breaks, an example, a generator."""

    code: str
    error: type[ProtocolError]
    rule: str
    summary: str
    example: Example
    generate: Generator

    def __post_init__(self) -> None:
        if self.error.code != self.code:
            raise ValueError(f"violation row {self.code!r} holds the class of {self.error.code!r}")
        if self.rule not in RULES:
            raise ValueError(f"violation row {self.code!r} names rule {self.rule!r}, which is not in RULES")

    @property
    def is_content(self) -> bool:
        """A content error: the message is well framed, only its content cannot be read (S3)."""
        return issubclass(self.error, ContentError)

    @property
    def closes_connection(self) -> bool:
        """A server closes the connection after this error (S2), instead of keeping it (S3)."""
        return not self.is_content

    @property
    def at_end_of_stream(self) -> bool:
        """The error shows only when the stream ends after the bytes (the sender closes)."""
        return issubclass(self.error, IncompleteMessage)

    @property
    def cite(self) -> str:
        """``"H4 (docs/PROTOCOL.md#h4)"``: the rule this row breaks, as tools name it."""
        return cite(self.rule)


def first_error(data: bytes, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> ProtocolError | None:
    """The first violation in the stream ``data`` (then closed), or None.

    A framing or header error as :class:`harness.Decoder` raises it; if the
    stream decodes, the first content error :meth:`harness.Message.json` raises
    on one of its ``text/json`` messages.
    """
    decoder = Decoder(max_content_length=max_content_length)
    try:
        messages = decoder.feed(data)
        decoder.close()
    except ProtocolError as error:
        return error
    for message in messages:
        if message.is_json:
            try:
                message.json()
            except ContentError as error:
                return error
    return None


# -- building bytes ---------------------------------------------------------------------


def _cut_short(raw: bytes, cut: int, description: str) -> Example:
    """The first ``cut`` bytes of the message ``raw``; ``expected`` as far as they tell (F4)."""
    header_end = 2 + int.from_bytes(raw[:2], "big")
    if cut < 2:
        expected = 2
    elif cut < header_end:
        expected = header_end
    else:
        expected = len(raw)
    return Example(raw[:cut], description, expected=expected, received=cut)


def _dumps(header: Any) -> str:
    return json.dumps(header, ensure_ascii=False)


def _text_json(content: bytes, encoding: str, description: str, byteorder: str = sys.byteorder) -> Example:
    """A well-framed text/json message holding ``content``, as an :class:`Example`."""
    message = Message.from_bytes(content, content_type="text/json", encoding=encoding, byteorder=byteorder)
    return Example(message.encode(), description, message=message)


# -- the generators ---------------------------------------------------------------------
#
# Each draws in a fixed order; the seed corpus (fuzz/seeds/) holds examples drawn
# with fixed Hypothesis seeds, so a change of order changes those seeds.

#: Byte sequences that are not UTF-8: stray bytes, overlong, surrogates, past U+10FFFF, truncated.
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


def _valid_header(draw: DrawFn, length: int = 0) -> dict[str, Any]:
    from hypothesis import strategies as st

    from harness.strategies import _byteorders

    return {
        "byteorder": draw(_byteorders),
        "content-type": draw(st.sampled_from(["text/json", "binary/custom-client-binary-type"])),
        "content-encoding": draw(st.sampled_from(["utf-8", "binary"])),
        "content-length": length,
    }


def _trailing(draw: DrawFn) -> bytes:
    """Up to 8 arbitrary bytes after the offending part: the error must not depend on them."""
    from hypothesis import strategies as st

    return draw(st.binary(max_size=8))


def _zero_header_length(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    return Example(b"\x00\x00" + _trailing(draw), "the 2-byte prefix announces an empty header")


def _header_not_utf8(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    text = _dumps(_valid_header(draw))
    style = draw(st.sampled_from(["in-string", "bom", "surrogate-escape"]))
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
    return Example(frame(raw) + _trailing(draw), description)


def _header_not_json(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    import string

    from hypothesis import strategies as st

    text = _dumps(_valid_header(draw))
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
        # letters, spaces, ';' and '=' are JSON only as a literal: null, true, false, and to
        # the strict reader (Python's) NaN and Infinity, which are non-finite-number instead
        garbage = st.text(string.ascii_letters + " ;=", min_size=1, max_size=40)
        literals = ("null", "true", "false", "NaN", "Infinity")
        text = draw(garbage.filter(lambda t: t.strip(" ") not in literals))
        description = "the JSON header is not JSON at all"
    return Example(frame(text.encode()) + _trailing(draw), description)


def _non_finite_number(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    header = _valid_header(draw)
    literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1E999"]))
    key = draw(st.sampled_from(["content-length", "x-value"]))
    if key == "content-length":
        text = _dumps(header).replace('"content-length": 0', f'"content-length": {literal}')
    else:
        text = _dumps(header)[:-1] + f', "x-value": [{literal}]}}'
    return Example(frame(text.encode()) + _trailing(draw), f"the JSON header holds the number {literal}")


def _duplicate_key(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    from harness.strategies import _text

    header = _valid_header(draw)
    text = _dumps(header)
    if draw(st.booleans()):
        key = draw(st.sampled_from(REQUIRED_KEYS))
        value = header[key] if draw(st.booleans()) else "other"
        text = text[:-1] + f", {json.dumps(key)}: {json.dumps(value)}}}"
    else:
        key = draw(_text)
        text = text[:-1] + f', "x-obj": {{{json.dumps(key)}: 1, {json.dumps(key)}: 2}}}}'
    return Example(frame(text.encode()) + _trailing(draw), f"the JSON header repeats the key {key!r}")


def _header_not_object(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    import math

    from hypothesis import strategies as st

    from harness.strategies import _json_scalars, json_values

    value = draw(
        st.one_of(
            st.lists(json_values(3), max_size=3),
            _json_scalars.filter(lambda v: not (isinstance(v, float) and not math.isfinite(v))),
        )
    )
    raw = json.dumps(value, ensure_ascii=False).encode()
    if len(raw) > MAX_HEADER_LENGTH:  # pragma: no cover - values drawn here are small
        raw = b"[]"
    return Example(frame(raw) + _trailing(draw), f"the JSON header is a {type(value).__name__}")


def _missing_header_key(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    from harness.strategies import extension_headers

    header = _valid_header(draw)
    drop = draw(st.sets(st.sampled_from(REQUIRED_KEYS), min_size=1))
    for key in drop:
        del header[key]
    header.update(draw(extension_headers(2)))
    for key in drop:
        header.pop(key, None)
    return Example(
        frame(_dumps(header).encode()) + _trailing(draw), "the JSON header lacks " + ", ".join(sorted(drop))
    )


def _invalid_header_value(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    bad_values = {
        "byteorder": st.sampled_from(["", "middle", "LITTLE", 1, None, True, ["little"]]),
        "content-length": st.one_of(
            st.integers(max_value=-1), st.sampled_from([1.0, 0.5, "10", True, False, None, [1], {"n": 1}])
        ),
        "content-type": st.sampled_from(["", 1, None, False, ["text/json"], {}]),
        "content-encoding": st.sampled_from(["", 0, None, True, ["utf-8"]]),
    }
    header = _valid_header(draw)
    key = draw(st.sampled_from(REQUIRED_KEYS))
    header[key] = draw(bad_values[key])
    return Example(
        frame(_dumps(header).encode()) + _trailing(draw), f"the JSON header sets {key} to {header[key]!r}"
    )


def _content_too_large(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    length = draw(st.integers(max_content_length + 1, max(max_content_length + 1, 2**40)))
    header = _valid_header(draw, length)
    # Some of the content may follow; the error must come from the header alone.
    return Example(
        frame(_dumps(header).encode()) + _trailing(draw),
        f"content-length {length} is over the limit of {max_content_length}",
        extra={"content_length": length},
    )


def _incomplete_message(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    from harness.strategies import messages

    raw = draw(messages(max_content_size=2048, extensions=False)).encode()
    cut = draw(st.integers(1, len(raw) - 1))
    return _cut_short(raw, cut, f"the stream ends after {cut} of the message's {len(raw)} bytes")


#: Content that is no valid JSON text (each one for a different reason).
_NOT_JSON = [b"", b"{", b"not json", b'{"a": NaN}', b'{"a": 1, "a": 2}', b"[1,]", b"{} {}"]


def _unsupported_encoding(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    encoding = draw(
        st.sampled_from(["binary", "rot13", "utf-7", "base64", "x-unknown"])
        | st.text(min_size=1, max_size=8).filter(lambda e: e.lower() not in TEXT_ENCODINGS)
    )
    return _text_json(
        b'{"action": "search", "value": "x"}',
        encoding,
        f"text/json content in the encoding {encoding!r}, which is not on the allow-list",
    )


def _content_not_decodable(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    bad = draw(st.sampled_from(_BAD_UTF8))
    return _text_json(
        b'{"action": "search", "value": "' + bad + b'"}',
        "utf-8",
        f"utf-8 text/json content holding the invalid bytes {bad!r}",
    )


def _content_not_json(draw: DrawFn, *, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> Example:
    from hypothesis import strategies as st

    content = draw(st.sampled_from(_NOT_JSON))
    return _text_json(content, "utf-8", f"text/json content {content!r}, which is not JSON")


# -- the canonical examples -----------------------------------------------------------
#
# The sample captures (pcaps/) show exactly these bytes, with these descriptions as
# packet comments: a change here changes the committed captures.

_GOOD_HEADER = b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
_MORPHEUS = Message.from_json({"action": "search", "value": "morpheus"}, byteorder="little").encode()
_TOO_LARGE = 2_000_000


# -- the table ----------------------------------------------------------------------------

#: Every violation of docs/PROTOCOL.md, by error code, in :data:`harness.errors.ERROR_CLASSES` order
#: (the probe runs its violation checks in this order; tests/test_violations.py holds the two together).
VIOLATIONS: dict[str, Violation] = {
    row.code: row
    for row in [
        Violation(
            "zero-header-length",
            ZeroHeaderLength,
            "F1",
            "the 2-byte prefix announces a JSON header of length 0",
            Example(b"\x00\x00", "the 2-byte prefix announces a JSON header of 0 bytes"),
            _zero_header_length,
        ),
        Violation(
            "header-not-utf8",
            HeaderNotUTF8,
            "H1",
            "the JSON header is not strict UTF-8 (or starts with a BOM, or escapes a lone surrogate)",
            Example(
                frame(
                    b'{"byteorder": "little", "content-type": "text/\xffjson", "content-encoding": "utf-8", '
                    b'"content-length": 2}',
                    b"{}",
                ),
                "the JSON header holds the byte 0xff, which is not UTF-8",
            ),
            _header_not_utf8,
        ),
        Violation(
            "header-not-json",
            HeaderNotJSON,
            "H2",
            "the JSON header is not one strict JSON text, or nests too deeply",
            Example(
                frame(
                    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8" '
                    b'"content-length": 2}',
                    b"{}",
                ),
                "the JSON header misses a comma between two members",
            ),
            _header_not_json,
        ),
        Violation(
            "non-finite-number",
            NonFiniteNumber,
            "H3",
            "the JSON header holds NaN, Infinity or a number that overflows to infinity",
            Example(
                frame(_GOOD_HEADER + b'"content-length": 2, "x-priority": NaN}', b"{}"),
                "the JSON header holds NaN",
            ),
            _non_finite_number,
        ),
        Violation(
            "duplicate-key",
            DuplicateKey,
            "H4",
            "a JSON object in the header repeats a key",
            Example(
                frame(_GOOD_HEADER + b'"content-length": 2, "content-length": 200}', b"{}"),
                "the JSON header sets content-length twice",
            ),
            _duplicate_key,
        ),
        Violation(
            "header-not-object",
            HeaderNotObject,
            "H5",
            "the JSON header is valid JSON but not an object",
            Example(
                frame(b'["byteorder", "little", "content-length", 2]', b"{}"),
                "the JSON header is an array, not an object",
            ),
            _header_not_object,
        ),
        Violation(
            "missing-header-key",
            MissingHeaderKey,
            "H6",
            "a required header key is missing",
            Example(
                frame(b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8"}'),
                "the JSON header has no content-length",
            ),
            _missing_header_key,
        ),
        Violation(
            "invalid-header-value",
            InvalidHeaderValue,
            "H7",
            "a required header key has a value of the wrong type or out of range",
            Example(
                frame(_GOOD_HEADER + b'"content-length": "2"}', b"{}"),
                'content-length is the string "2", not an integer',
            ),
            _invalid_header_value,
        ),
        Violation(
            "content-too-large",
            ContentTooLarge,
            "L1",
            "content-length exceeds the receiver's limit (refused from the header alone)",
            Example(
                frame(
                    _GOOD_HEADER + b'"content-length": %d}' % _TOO_LARGE,
                    b'{"action": "search", "value": "' + b"a" * 64,
                ),
                f"content-length {_TOO_LARGE} is over the 1 MiB limit (flagged from the header alone)",
                extra={"content_length": _TOO_LARGE},
            ),
            _content_too_large,
        ),
        Violation(
            "incomplete-message",
            IncompleteMessage,
            "F4",
            "the stream ends in the middle of a message",
            _cut_short(_MORPHEUS, 80, f"the client closes after 80 of the message's {len(_MORPHEUS)} bytes"),
            _incomplete_message,
        ),
        Violation(
            "unsupported-encoding",
            UnsupportedEncoding,
            "C2",
            "the content-encoding of a text/json message is not on the allow-list",
            _text_json(
                b'{"action": "search", "value": "ring"}',
                "rot13",
                "text/json content declared in the encoding rot13, which is not on the allow-list",
                byteorder="little",
            ),
            _unsupported_encoding,
        ),
        Violation(
            "content-not-decodable",
            ContentNotDecodable,
            "C3",
            "the text/json content is not valid text in its content-encoding",
            _text_json(
                b'{"action": "search", "value": "\xff"}',
                "utf-8",
                "text/json content that is not valid UTF-8",
                byteorder="little",
            ),
            _content_not_decodable,
        ),
        Violation(
            "content-not-json",
            ContentNotJSON,
            "C4",
            "the decoded text/json content is not one strict JSON value",
            _text_json(
                b'{"action": "search", "value": }',
                "utf-8",
                "text/json content that is not JSON",
                byteorder="little",
            ),
            _content_not_json,
        ),
    ]
}


def stream_violations() -> list[Violation]:
    """The rows whose bytes break the stream itself (framing and header errors), in table order."""
    return [row for row in VIOLATIONS.values() if not row.is_content]


def content_violations() -> list[Violation]:
    """The rows of well-framed text/json messages whose content cannot be read, in table order."""
    return [row for row in VIOLATIONS.values() if row.is_content]
