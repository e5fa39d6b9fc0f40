"""A deliberately naive lpjson decoder, written from docs/PROTOCOL.md alone, as an oracle.

It reads a whole stream at once, walks it message by message with plain slicing,
and checks each JSON header with the standard library's ``json`` module plus
hooks. It shares no code with ``harness.decoder`` or ``harness.strictjson``:
when the two disagree, one of them is wrong, and docs/PROTOCOL.md says which.

Where several violations apply, this file follows the spec's check order
(docs/PROTOCOL.md#check-order): a header with several violations gets the
first one in this order: not UTF-8 (including a BOM), not JSON (including
nesting deeper than 200 and integers too long for Python), a non-finite
number, a duplicate key, a lone surrogate escape (not UTF-8), not an object,
a missing key, a bad value, a content-length over the limit.
"""

from __future__ import annotations

import json
import math
from typing import Any, NamedTuple

MAX_DEPTH = 200  # the nesting limit for a JSON header (docs/PROTOCOL.md#h2)
REQUIRED = ("byteorder", "content-type", "content-encoding", "content-length")


class Outcome(NamedTuple):
    """What a whole stream holds: its messages, then the first violation, if any."""

    messages: list[tuple[dict[str, Any], bytes]]
    code: str | None
    offset: int | None
    expected: int | None = None  # for incomplete-message: bytes the message needs
    received: int | None = None  # for incomplete-message: bytes of it that came


def nesting_depth(text: str) -> int:
    """How deeply arrays and objects nest in ``text``, ignoring brackets inside strings."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def has_lone_surrogate(value: Any) -> bool:
    """Whether any string in ``value`` (keys included) holds a UTF-16 surrogate code point."""
    if isinstance(value, str):
        return any(0xD800 <= ord(char) <= 0xDFFF for char in value)
    if isinstance(value, list):
        return any(has_lone_surrogate(item) for item in value)
    if isinstance(value, dict):
        return any(has_lone_surrogate(key) or has_lone_surrogate(item) for key, item in value.items())
    return False


def check_header(raw: bytes, max_content_length: int) -> tuple[str | None, Any]:
    """Return ``(error code, None)`` or ``(None, header dict)`` for one JSON header."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "header-not-utf8", None
    if text.startswith("\ufeff"):
        return "header-not-utf8", None
    if nesting_depth(text) > MAX_DEPTH:
        return "header-not-json", None

    saw_non_finite = False
    saw_duplicate = False

    def constant(name: str) -> float:
        nonlocal saw_non_finite
        saw_non_finite = True
        return 0.0

    def number(literal: str) -> float:
        nonlocal saw_non_finite
        value = float(literal)
        if math.isinf(value):
            saw_non_finite = True
        return value

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal saw_duplicate
        keys = [key for key, _ in items]
        if len(set(keys)) != len(keys):
            saw_duplicate = True
        return dict(items)

    try:
        value = json.loads(text, parse_constant=constant, parse_float=number, object_pairs_hook=pairs)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so are over-long integers
        return "header-not-json", None
    if saw_non_finite:
        return "non-finite-number", None
    if saw_duplicate:
        return "duplicate-key", None
    if has_lone_surrogate(value):
        return "header-not-utf8", None
    if not isinstance(value, dict):
        return "header-not-object", None
    if any(key not in value for key in REQUIRED):
        return "missing-header-key", None
    if value["byteorder"] not in ("little", "big") or not isinstance(value["byteorder"], str):
        return "invalid-header-value", None
    for key in ("content-type", "content-encoding"):
        if not isinstance(value[key], str) or value[key] == "":
            return "invalid-header-value", None
    length = value["content-length"]
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        return "invalid-header-value", None
    if length > max_content_length:
        return "content-too-large", None
    return None, value


def decode_stream(data: bytes, max_content_length: int = 1 << 20) -> Outcome:
    """Decode a whole stream: every message, then the first violation (or ``None``)."""
    messages: list[tuple[dict[str, Any], bytes]] = []
    start = 0
    while start < len(data):
        rest = data[start:]
        if len(rest) < 2:
            return Outcome(messages, "incomplete-message", start, 2, len(rest))
        header_length = rest[0] * 256 + rest[1]
        if header_length == 0:
            return Outcome(messages, "zero-header-length", start)
        if len(rest) < 2 + header_length:
            return Outcome(messages, "incomplete-message", start, 2 + header_length, len(rest))
        code, header = check_header(rest[2 : 2 + header_length], max_content_length)
        if code is not None:
            return Outcome(messages, code, start)
        total = 2 + header_length + header["content-length"]
        if len(rest) < total:
            return Outcome(messages, "incomplete-message", start, total, len(rest))
        messages.append((header, rest[2 + header_length : total]))
        start += total
    return Outcome(messages, None, None)
