"""Unit tests for harness.Message: construction, building, reading, encoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from codec_helpers import typed
from hypothesis import given
from hypothesis import strategies as st

from harness import (
    ContentError,
    ContentNotDecodable,
    ContentNotJSON,
    Decoder,
    InvalidHeaderValue,
    Message,
    MissingHeaderKey,
    ProtocolError,
    UnsupportedEncoding,
    decode_all,
    encode,
)
from harness import strategies as lst
from harness.header import check_header
from harness.message import MAX_HEADER_LENGTH, REQUIRED_KEYS
from harness.strictjson import MAX_DEPTH, JSONViolation, loads_strict


def header(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "byteorder": "little",
        "content-type": "text/json",
        "content-encoding": "utf-8",
        "content-length": 2,
    }
    base.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return base


# -- the constructor validates -----------------------------------------------------------


def test_codec_message_constructor_accepts_a_valid_header() -> None:
    message = Message(header(), b"{}")
    assert message.content_type == "text/json" and message.content_encoding == "utf-8"
    assert message.byteorder == "little" and message.is_json


@pytest.mark.parametrize(
    ("bad_header", "content", "error", "match"),
    [
        ([("byteorder", "little")], b"", TypeError, "header must be a dict"),
        (header(), "{}", TypeError, "content must be bytes"),
        (header(), bytearray(b"{}"), TypeError, "content must be bytes"),
        (
            {"byteorder": "little", "content-type": "t", "content-encoding": "e"},
            b"",
            ValueError,
            "missing required key 'content-length'",
        ),
        ({}, b"", ValueError, "missing required key"),
        (header(byteorder="middle"), b"{}", ValueError, "byteorder must be"),
        (header(byteorder=["little"]), b"{}", ValueError, "byteorder must be"),
        (header(content_type=""), b"{}", ValueError, "content-type must be"),
        (header(content_type=None), b"{}", ValueError, "content-type must be"),
        (header(content_encoding=0), b"{}", ValueError, "content-encoding must be"),
        (header(content_length=-1), b"{}", ValueError, "content-length must be"),
        (header(content_length=2.0), b"{}", ValueError, "content-length must be"),
        (header(content_length=True), b"{}", ValueError, "content-length must be"),
        (header(content_length="2"), b"{}", ValueError, "content-length must be"),
        # content-length does not match the content:
        (header(content_length=3), b"{}", ValueError, "content-length is 3 but"),
    ],
)
def test_codec_message_constructor_rejects(
    bad_header: Any, content: Any, error: type[Exception], match: str
) -> None:
    # Building a bad message is the caller's mistake: a ValueError/TypeError, never a
    # ProtocolError (those are for what a peer sent).
    with pytest.raises(error, match=match) as caught:
        Message(bad_header, content)
    assert not isinstance(caught.value, ProtocolError)


def test_codec_message_missing_keys_are_named_in_the_guides_order() -> None:
    with pytest.raises(ValueError) as caught:
        Message({"content-length": 0}, b"")
    assert str(caught.value) == (
        "invalid message header: missing required key 'byteorder', 'content-type', 'content-encoding'"
    )
    # The same header from a peer is the protocol error, with the same reason.
    with pytest.raises(MissingHeaderKey) as from_peer:
        check_header({"content-length": 0})
    assert from_peer.value.reason == "missing required key 'byteorder', 'content-type', 'content-encoding'"


def test_codec_message_is_frozen_unhashable_and_compares_by_value() -> None:
    one = Message(header(), b"{}")
    two = Message(dict(reversed(list(header().items()))), b"{}")
    assert one == two
    assert one != Message(header(byteorder="big"), b"{}")
    with pytest.raises(AttributeError):
        one.content = b"[]"  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(one)


def test_codec_message_repr_truncates_long_content() -> None:
    text = repr(Message.from_bytes(b"x" * 1000))
    assert "x" * 64 + "..." in text and "x" * 65 not in text


# -- building ----------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32", "latin-1", "ascii", "UTF-8"])
def test_codec_message_from_json_in_each_allowed_encoding(encoding: str) -> None:
    value = {"action": "search", "value": "é" if encoding not in ("ascii", "ASCII") else "e", "n": [1, 2.5]}
    message = Message.from_json(value, encoding=encoding, byteorder="big")
    assert message.header == {
        "byteorder": "big",
        "content-type": "text/json",
        "content-encoding": encoding,
        "content-length": len(message.content),
    }
    assert message.json() == value
    assert message.text() == json.dumps(value, ensure_ascii=False)


@pytest.mark.parametrize("encoding", ["binary", "utf-7", "rot13", "base64", "x"])
def test_codec_message_from_json_refuses_encodings_off_the_allow_list(encoding: str) -> None:
    with pytest.raises(ValueError, match="is not one of the text encodings") as caught:
        Message.from_json({}, encoding=encoding)
    assert not isinstance(caught.value, UnsupportedEncoding)


def test_codec_message_from_json_refuses_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        Message.from_json({"x": float("nan")})


def test_codec_message_from_bytes_defaults_to_the_guides_binary_request() -> None:
    message = Message.from_bytes(b"\x00\xff", byteorder="little")
    assert message.header == {
        "byteorder": "little",
        "content-type": "binary/custom-client-binary-type",
        "content-encoding": "binary",
        "content-length": 2,
    }
    assert not message.is_json


def test_codec_message_extra_headers_may_not_override_required_keys() -> None:
    for key in REQUIRED_KEYS:
        with pytest.raises(ValueError, match=key):
            Message.from_bytes(b"", extra_headers={key: "x"})


# -- reading -----------------------------------------------------------------------------


def test_codec_message_json_refuses_non_json_content_type() -> None:
    with pytest.raises(ContentNotJSON, match="content-type"):
        Message.from_bytes(b"{}").json()


def test_codec_message_text_refuses_unlisted_encodings_without_calling_the_codec() -> None:
    # "rot13" is a real Python codec: a peer must not get to pick it.
    message = Message.from_bytes(b"{}", content_type="text/json", encoding="rot13")
    with pytest.raises(UnsupportedEncoding):
        message.text()
    with pytest.raises(UnsupportedEncoding):
        message.json()


@pytest.mark.parametrize(
    ("content", "encoding", "error"),
    [
        (b'{"a": "\xff"}', "utf-8", ContentNotDecodable),
        (b"\xff\xfe\x00", "utf-16", ContentNotDecodable),
        (b'{"a": \x80}', "ascii", ContentNotDecodable),
        (b"", "utf-8", ContentNotJSON),
        (b"{", "utf-8", ContentNotJSON),
        (b'{"a": NaN}', "utf-8", ContentNotJSON),
        (b"[1e400]", "utf-8", ContentNotJSON),
        (b'{"a": 1, "a": 2}', "utf-8", ContentNotJSON),
        (b'["\\udc00"]', "utf-8", ContentNotJSON),
        (b"{} {}", "utf-8", ContentNotJSON),
        (b"\xef\xbb\xbf{}", "utf-8", ContentNotJSON),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "utf-8", ContentNotJSON),
    ],
)
def test_codec_message_json_errors(content: bytes, encoding: str, error: type[ContentError]) -> None:
    message = Message.from_bytes(content, content_type="text/json", encoding=encoding)
    with pytest.raises(error) as caught:
        message.json()
    assert caught.value.offset is None
    assert caught.value.code == error.code


@given(lst.bad_content_messages())
def test_codec_message_bad_content_strategy_raises_its_class(
    case: tuple[Message, type[ContentError]],
) -> None:
    message, error = case
    with pytest.raises(error):
        message.json()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32"])
def test_codec_message_json_nesting_is_measured_on_text_not_bytes(encoding: str) -> None:
    """U+5C5B holds the bytes of '[' and '\\' in UTF-16: 250 of them are not 250 levels."""
    value = ["\u5c5b" * 250, "\u5b5b" * 250]
    assert Message.from_json(value, encoding=encoding).json() == value
    deep: Any = 0
    for _ in range(MAX_DEPTH):
        deep = [deep]
    assert Message.from_json(deep, encoding=encoding).json() == deep
    with pytest.raises(ContentNotJSON, match="nested"):
        Message.from_json([deep], encoding=encoding).json()


# -- encoding ----------------------------------------------------------------------------


def test_codec_message_encode_writes_extension_headers_after_the_required_keys() -> None:
    message = Message(
        {
            "x-id": 7,
            "content-length": 2,
            "byteorder": "big",
            "x-tags": ["a", "ü"],
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "x-nested": {"k": None},
        },
        b"{}",
    )
    wire = message.encode()
    raw = (
        '{"byteorder": "big", "content-type": "text/json", "content-encoding": "utf-8", '
        '"content-length": 2, "x-id": 7, "x-tags": ["a", "ü"], "x-nested": {"k": null}}'
    ).encode()
    assert wire == len(raw).to_bytes(2, "big") + raw + b"{}"
    assert encode(message) == wire
    (decoded,) = decode_all(wire)
    assert decoded.header == message.header
    assert list(decoded.header) == [*REQUIRED_KEYS, "x-id", "x-tags", "x-nested"]


def test_codec_message_header_over_65535_bytes_is_refused() -> None:
    def with_padding(size: int) -> Message:
        return Message.from_bytes(b"", extra_headers={"x-pad": "p" * size})

    base = len(with_padding(0).encode()) - 2
    fits = with_padding(MAX_HEADER_LENGTH - base)
    assert len(fits.encode()) == 2 + MAX_HEADER_LENGTH
    assert Decoder().feed(fits.encode()) == [fits]
    with pytest.raises(ValueError, match="65535"):
        with_padding(MAX_HEADER_LENGTH - base + 1).encode()


@pytest.mark.parametrize(
    "extra",
    [{"x": float("inf")}, {"x": object()}, {"x": "\udc00"}, {"x": {1: "a", "1": "b"}}],
    ids=["infinity", "object", "lone-surrogate", "non-string-key"],
)
def test_codec_message_encode_refuses_what_json_cannot_carry(extra: dict[str, Any]) -> None:
    message = Message.from_bytes(b"", extra_headers=extra)
    with pytest.raises(ValueError):
        message.encode()


@st.composite
def json_contents(draw: st.DrawFn) -> bytes:
    """UTF-8 JSON texts in varied styles, some flat (msgspec's path), some not, some broken."""
    value = draw(
        lst.json_values(6)
        | st.dictionaries(
            st.text(max_size=5), st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
        )
        | st.lists(st.integers(min_value=-(2**70), max_value=2**70) | st.booleans() | st.none(), max_size=5)
    )
    text = json.dumps(
        value,
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(", ", ": "), (",", ":"), (" ,", " : ")])),
    )
    mutation = draw(st.sampled_from(["none", "none", "duplicate", "insert", "delete", "nan", "surrogate"]))
    if mutation == "duplicate" and text.startswith("{") and text != "{}":
        first = text[1:].split(",")[0].rstrip("}")
        text = text[:-1] + ", " + first + "}"
    elif mutation == "insert":
        at = draw(st.integers(0, len(text)))
        extra = draw(st.sampled_from([":", ",", '"', "[", "]", "{", "}", " ", "\\", "1", "\ufeff"]))
        text = text[:at] + extra + text[at:]
    elif mutation == "delete" and text:
        at = draw(st.integers(0, len(text) - 1))
        text = text[:at] + text[at + 1 :]
    elif mutation == "nan":
        text = text.replace("1", "NaN", 1)
    elif mutation == "surrogate":
        text = text.replace('"', '"\\udc00', 1)
    return text.encode("utf-8", "surrogatepass")


def _content_verdict(read: Any) -> Any:
    try:
        return typed(read())
    except ContentError as error:
        return type(error)
    except JSONViolation:
        return ContentNotJSON


@given(json_contents(), st.sampled_from(["utf-8", "UTF-8"]))
def test_codec_message_json_fast_path_agrees_with_the_strict_reader(content: bytes, encoding: str) -> None:
    message = Message.from_bytes(content, content_type="text/json", encoding=encoding)
    strict = _content_verdict(lambda: loads_strict(content))
    if strict is ContentNotJSON:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            strict = ContentNotDecodable
    assert _content_verdict(message.json) == strict


# -- what the errors say, and the edges the mutation run found (benchmarks/mutation.py) -----


def test_codec_message_content_errors_say_what_is_wrong() -> None:
    with pytest.raises(UnsupportedEncoding) as unsupported:
        Message.from_bytes(b"{}", content_type="text/json", encoding="rot13").text()
    assert unsupported.value.reason == (
        "content-encoding 'rot13' is not one of ['ascii', 'latin-1', 'utf-16', 'utf-32', 'utf-8']"
    )
    with pytest.raises(ContentNotDecodable) as undecodable:
        Message.from_bytes(b'{"a": "\xff"}', content_type="text/json", encoding="utf-8").json()
    assert undecodable.value.reason == "content is not valid utf-8 at byte 7 (invalid start byte)"
    with pytest.raises(ContentNotJSON) as not_json:
        Message.from_bytes(b'{"a": 1, "a": 2}', content_type="text/json", encoding="utf-8").json()
    assert not_json.value.reason == "content is not strict JSON: duplicate key 'a'"


@pytest.mark.parametrize("encoding", ["utf-8", "UTF-8", "utf-16"])
def test_codec_message_json_object_holding_one_deep_array_is_refused_past_the_limit(encoding: str) -> None:
    """One key, one ':' and a nested value: the flat-object shortcut must not take it."""

    def content(depth: int) -> Message:
        value = "[" * (depth - 1) + "]" * (depth - 1)
        return Message.from_bytes(
            f'{{"a": {value}}}'.encode(encoding), content_type="text/json", encoding=encoding
        )

    assert content(MAX_DEPTH).json() == json.loads(
        '{"a": ' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    )
    with pytest.raises(ContentNotJSON, match="nested"):
        content(MAX_DEPTH + 1).json()
    with pytest.raises(ContentNotJSON, match="nested"):
        Message.from_bytes(
            ("[" + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "]").encode(encoding),
            content_type="text/json",
            encoding=encoding,
        ).json()


@pytest.mark.parametrize(
    "extra",
    [{"x": [{1: "a"}]}, {"x": [[{"k": {2: None}}]]}, {"x": ({3: 1},)}],
    ids=["in-a-list", "deep-in-lists", "in-a-tuple"],
)
def test_codec_message_encode_refuses_non_string_keys_inside_arrays(extra: dict[str, Any]) -> None:
    message = Message.from_bytes(b"", extra_headers=extra)
    with pytest.raises(
        ValueError, match=r"^every key in the header \(nested objects included\) must be a str$"
    ):
        message.encode()


def test_codec_message_encode_error_names_what_json_cannot_carry() -> None:
    message = Message.from_bytes(b"", extra_headers={"x": object()})
    with pytest.raises(ValueError, match=r"^the header holds a value JSON cannot carry: .*object"):
        message.encode()


def test_codec_message_repr_keeps_content_up_to_64_bytes_whole() -> None:
    for size in (0, 1, 63, 64):
        content = b"y" * size
        assert repr(Message.from_bytes(content)).endswith(f"content={content!r})")
    assert repr(Message.from_bytes(b"y" * 65)).endswith(f"content={b'y' * 64 + b'...'!r})")


def test_codec_message_constructor_errors_say_what_is_wrong() -> None:
    with pytest.raises(TypeError, match=r"^header must be a dict$"):
        Message([("byteorder", "little")], b"")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^content must be bytes$"):
        Message(header(), "{}")  # type: ignore[arg-type]
    with pytest.raises(ValueError) as caught:
        Message(header(content_length=3), b"{}")
    assert str(caught.value) == "content-length is 3 but the content has 2 bytes"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (header(byteorder="middle"), "byteorder must be 'little' or 'big', not 'middle'"),
        (header(content_type=""), "content-type must be a non-empty string, not ''"),
        (header(content_encoding=0), "content-encoding must be a non-empty string, not 0"),
        (header(content_length=-1), "content-length must be an integer >= 0, not -1"),
        (header(content_length="2"), "content-length must be an integer >= 0, not '2'"),
    ],
)
def test_codec_message_invalid_header_values_are_named_with_the_value(
    bad: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ValueError) as caught:
        Message(bad, b"{}")
    assert str(caught.value) == f"invalid message header: {reason}"
    # The same header from a peer is the protocol error, with the same reason.
    with pytest.raises(InvalidHeaderValue) as from_peer:
        check_header(bad)
    assert from_peer.value.reason == reason


def test_codec_message_from_json_names_the_refused_encoding() -> None:
    with pytest.raises(ValueError) as caught:
        Message.from_json({}, encoding="utf-7")
    assert str(caught.value) == (
        "content-encoding 'utf-7' is not one of the text encodings "
        "['ascii', 'latin-1', 'utf-16', 'utf-32', 'utf-8']"
    )
