"""Unit tests for harness.strictjson.loads_strict, the strict JSON reader."""

from __future__ import annotations

import inspect
import json
import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import ContentNotJSON, Decoder, HeaderNotJSON, Message
from harness import strategies as lst
from harness.strictjson import MAX_DEPTH, JSONViolation, loads_strict


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"\xff", "utf8"),
        (b'"\xed\xa0\x80"', "utf8"),  # an encoded surrogate is not UTF-8
        (b"\xef\xbb\xbf{}", "utf8"),
        (b'"\\ud800"', "utf8"),
        (b'{"\\udfff": 1}', "utf8"),
        (b"", "json"),
        (b"{", "json"),
        (b"{} x", "json"),
        (b"[1,]", "json"),
        (b"'a'", "json"),
        (b'"a\tb"', "json"),
        (b"1" * 4301, "json"),  # past Python's integer digit limit
        (b"NaN", "non-finite"),
        (b"[-Infinity]", "non-finite"),
        (b'{"a": 1e400}', "non-finite"),
        (b'{"a": 1, "a": 1}', "duplicate"),
        (b'[{"b": {"c": 1, "c": 2}}]', "duplicate"),
    ],
)
def test_codec_strictjson_violations(raw: bytes, kind: str) -> None:
    with pytest.raises(JSONViolation) as caught:
        loads_strict(raw)
    assert caught.value.kind == kind
    assert caught.value.reason


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b'\xff{"a": NaN, "a": 1}', "utf8"),  # UTF-8 before anything else
        (b'{"a": NaN, "a": 1} x', "json"),  # syntax before numbers and keys
        (b'{"a": 1, "a": NaN}', "non-finite"),  # non-finite before duplicate, wherever they are
        (b'{"\\ud800": 1, "\\ud800": 2}', "duplicate"),  # duplicate before lone surrogate
        (b"[" * (MAX_DEPTH + 1) + b"NaN" + b"]" * (MAX_DEPTH + 1), "json"),  # depth before numbers
    ],
)
def test_codec_strictjson_check_order(raw: bytes, kind: str) -> None:
    with pytest.raises(JSONViolation) as caught:
        loads_strict(raw)
    assert caught.value.kind == kind


def test_codec_strictjson_depth_limit_is_exact() -> None:
    assert loads_strict(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    assert loads_strict(b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH) is not None
    for raw in (
        b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
        b"[" * 100_000,  # never a RecursionError, whatever the stack
        b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1),
    ):
        with pytest.raises(JSONViolation, match="nested") as caught:
            loads_strict(raw)
        assert caught.value.kind == "json"


def test_codec_strictjson_brackets_in_strings_do_not_count_as_nesting() -> None:
    raw = json.dumps(["[{" * 500, "\\[" * 300, '"]'], ensure_ascii=False).encode()
    assert loads_strict(raw) == ["[{" * 500, "\\[" * 300, '"]']


def test_codec_strictjson_accepts_what_only_looks_suspicious() -> None:
    assert loads_strict(b'"\\\\ud800"') == "\\ud800"  # an escaped backslash, then text
    assert loads_strict(b'"\\ud83d\\udc36"') == "🐶"  # a surrogate pair is one character
    assert loads_strict(b" \r\n\t[1.5e300, -0, 123456789012345678901234567890] ") == [
        1.5e300,
        0,
        123456789012345678901234567890,
    ]


def test_codec_strictjson_text_argument_skips_decoding() -> None:
    raw = '{"a": "é"}'.encode("utf-16")
    assert loads_strict(raw, raw.decode("utf-16")) == {"a": "é"}


@given(lst.json_values(12))
def test_codec_strictjson_reads_what_json_dumps_writes(value: Any) -> None:
    for ensure_ascii in (True, False):
        raw = json.dumps(value, ensure_ascii=ensure_ascii).encode()
        assert loads_strict(raw) == value


@given(st.binary(max_size=64))
def test_codec_strictjson_raises_only_json_violations(raw: bytes) -> None:
    try:
        loads_strict(raw)
    except JSONViolation as violation:
        assert violation.kind in {"utf8", "json", "non-finite", "duplicate"}


# -- the depth limit when the bracket count does not settle it ---------------------------
#
# _check_depth counts brackets first and computes the depth only past MAX_DEPTH of them:
# a text exactly MAX_DEPTH deep made of exactly MAX_DEPTH brackets never reaches the depth
# computation. These texts hold more brackets than that (siblings of the deep chain), so
# the depth computation decides, and it must put the limit exactly at MAX_DEPTH.


def _deep_with_siblings(depth: int, layout: str) -> str:
    """JSON text ``depth`` levels deep holding 50 more brackets than ``depth``, beside its deepest chain."""
    siblings = ",".join(["[]", "{}", '{"k": []}'] * 10 + ["[[]]"] * 10)  # 50 brackets, 3 deep at most
    chain = "[" * (depth - 1) + "0" + "]" * (depth - 1)
    if layout == "object":  # the chain is an object's member, the siblings another member's items
        return f'{{"siblings": [{siblings}], "deep": {chain}}}'
    return f"[{chain}, {siblings}]" if layout == "after" else f"[{siblings}, {chain}]"


def _depth_of(text: str) -> int:
    depth = deepest = 0
    for char in text:  # no brackets inside strings in these texts
        depth += (char in "[{") - (char in "]}")
        deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize("layout", ["after", "before", "object"])
def test_codec_strictjson_depth_limit_is_exact_with_more_brackets_than_the_limit(layout: str) -> None:
    at_limit = _deep_with_siblings(MAX_DEPTH, layout)
    over = _deep_with_siblings(MAX_DEPTH + 1, layout)
    assert _depth_of(at_limit) == MAX_DEPTH and at_limit.count("[") + at_limit.count("{") > MAX_DEPTH
    assert _depth_of(over) == MAX_DEPTH + 1
    assert loads_strict(at_limit.encode()) == json.loads(at_limit)
    with pytest.raises(JSONViolation, match="nested") as caught:
        loads_strict(over.encode())
    assert caught.value.kind == "json"


@pytest.mark.parametrize("layout", ["after", "before", "object"])
def test_codec_header_depth_limit_is_exact_with_more_brackets_than_the_limit(layout: str) -> None:
    """The header object is one level: an extension value MAX_DEPTH - 1 deep puts it at the limit."""

    def framed(depth: int) -> bytes:
        raw = (
            '{"byteorder": "big", "content-type": "binary/x", "content-encoding": "binary", '
            f'"content-length": 1, "x-deep": {_deep_with_siblings(depth - 1, layout)}}}'
        ).encode()
        return len(raw).to_bytes(2, "big") + raw + b"!"

    (message,) = Decoder().feed(framed(MAX_DEPTH))
    assert message.header["x-deep"] == json.loads(_deep_with_siblings(MAX_DEPTH - 1, layout))
    assert message.content == b"!"
    with pytest.raises(HeaderNotJSON, match="nested") as caught:
        Decoder().feed(framed(MAX_DEPTH + 1))
    assert caught.value.code == "header-not-json" and caught.value.offset == 0


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
@pytest.mark.parametrize("layout", ["after", "before", "object"])
def test_codec_content_depth_limit_is_exact_with_more_brackets_than_the_limit(
    layout: str, encoding: str
) -> None:
    def message(depth: int) -> Message:
        return Message.from_bytes(
            _deep_with_siblings(depth, layout).encode(encoding),
            content_type="text/json",
            encoding=encoding,
        )

    assert message(MAX_DEPTH).json() == json.loads(_deep_with_siblings(MAX_DEPTH, layout))
    with pytest.raises(ContentNotJSON, match="nested") as caught:
        message(MAX_DEPTH + 1).json()
    assert caught.value.code == "content-not-json"


# -- what the reasons say (they reach the peer as the error message's detail) ------------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xef\xbb\xbf{}", "starts with a byte order mark"),
        (b'"\\ud800"', "escapes a lone UTF-16 surrogate"),
        (b'["ok", "\\udfff"]', "escapes a lone UTF-16 surrogate"),
        (b"[NaN]", "non-finite number NaN"),
        (b'{"a": -Infinity}', "non-finite number -Infinity"),
        (b"[1, 1e400]", "non-finite number 1e400"),
        (b'{"a": 1, "b": 2, "b": 3}', "duplicate key 'b'"),  # the repeated key, not the first one
        (b'{"z": {"y": 1, "x": 2, "x": 3}, "w": {"v": 1, "v": 2}}', "duplicate key 'x'"),  # the first found
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), f"nested more than {MAX_DEPTH} levels deep"),
    ],
)
def test_codec_strictjson_reasons_name_the_violation(raw: bytes, reason: str) -> None:
    with pytest.raises(JSONViolation) as caught:
        loads_strict(raw)
    assert caught.value.reason == reason
    assert str(caught.value) == reason


def test_codec_strictjson_reason_of_invalid_utf8_names_the_byte() -> None:
    with pytest.raises(JSONViolation) as caught:
        loads_strict(b'{"a": "\xc3("}')
    assert caught.value.reason.startswith("invalid UTF-8 at byte 7 (")


# -- whatever the caller's stack and text --------------------------------------------------


def test_codec_strictjson_little_stack_left_is_a_violation_not_a_recursion_error() -> None:
    """json's C scanner counts against the recursion limit (3.11): a caller deep in its
    own stack gets a JSONViolation for a text within MAX_DEPTH, never a RecursionError."""
    raw = b"[" * 150 + b"]" * 150
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(len(inspect.stack()) + 60)
    try:
        outcome: Any = loads_strict(raw)
    except JSONViolation as violation:
        outcome = violation
    finally:
        sys.setrecursionlimit(limit)
    if isinstance(outcome, JSONViolation):
        assert (outcome.kind, outcome.reason) == ("json", "nested too deeply")
    else:  # a Python whose C code does not count against the recursion limit
        assert sys.version_info >= (3, 12) and outcome == json.loads(raw)


def test_codec_strictjson_text_with_a_lone_surrogate_outside_strings_is_still_measured() -> None:
    """The ``text`` argument is any str: a lone surrogate outside a string (no decoder
    produces one, a caller can) must not break the depth measurement."""
    text = "[" * (MAX_DEPTH + 1) + "\ud800" + "]" * (MAX_DEPTH + 1)
    with pytest.raises(JSONViolation, match="nested more than") as caught:
        loads_strict(text.encode("utf-8", "surrogatepass"), text)
    assert caught.value.kind == "json"
    text = "[" * (MAX_DEPTH - 1) + "\ud800" + "]" * (MAX_DEPTH - 1) + "[]" * 10
    with pytest.raises(JSONViolation) as caught:
        loads_strict(text.encode("utf-8", "surrogatepass"), text)
    assert caught.value.kind == "json" and "nested" not in caught.value.reason
