"""Strict JSON reading shared by the header and ``text/json`` content.

The protocol wants RFC 8259 JSON and nothing looser than Python's ``json``
module lets through by default: no ``NaN``/``Infinity``, no numbers that
overflow to infinity, no duplicate keys, no lone surrogate escapes (they could
not be written back as UTF-8), and a fixed nesting limit (so that the verdict
never depends on how deep the caller's stack is).

:func:`loads_strict` is the definitive reader. :func:`fast_loads` is the one
fast path (msgspec): it returns a value only where both readers provably agree,
else :data:`UNDECIDED`, and the header, ``text/json`` content and application
paths all go through it before falling back to :func:`loads_strict`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from itertools import accumulate, count
from operator import sub
from typing import Any, Final

import msgspec

__all__ = ["MAX_DEPTH", "UNDECIDED", "JSONViolation", "fast_loads", "loads_strict"]

#: Deepest nesting of arrays and objects accepted in a JSON text.
MAX_DEPTH = 200

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: no alternation per character
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
#: ``bytes.translate`` arguments: opening brackets to 2, closing ones to 0, every other byte dropped.
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")


class JSONViolation(Exception):
    """Why a byte string is not strict JSON.

    ``kind`` is one of ``"utf8"``, ``"json"``, ``"non-finite"``, ``"duplicate"``;
    callers map it onto their own error class.
    """

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _depth(text: str) -> int:
    """Deepest bracket nesting of ``text`` outside strings (exact for valid JSON).

    The depth after the i-th bracket is the running sum of its steps (+1 or -1); it is
    taken in C (``accumulate``, ``map``, ``max``) with no Python-level step per bracket,
    which matters under a fuzzer's instrumentation (it traces every step of a Python loop).
    """
    # Outside strings, a bracket is the only character that encodes to a bracket's byte.
    outside = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    steps = outside.translate(_BRACKET_STEPS, _NOT_BRACKETS)  # 2 or 0 per bracket, in order
    if not steps:
        return 0
    depths: Iterator[int] = map(sub, accumulate(steps), count(1))
    return max(0, max(depths))


def _check_depth(text: str) -> None:
    # Count on the decoded text, never on the raw bytes: in UTF-16 or UTF-32 content a
    # character such as U+5C5B holds the bytes of "[" and "\\" without being either.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise JSONViolation("json", f"nested more than {MAX_DEPTH} levels deep")


def loads_strict(raw: bytes | bytearray, text: str | None = None) -> Any:
    """Parse ``raw`` (UTF-8 bytes) as one strict JSON text.

    When ``text`` is given it is the already-decoded text of ``raw`` and the
    UTF-8 step is skipped. Violations are checked in a fixed order, so one
    input always gets the same verdict: UTF-8, BOM, nesting depth, JSON
    syntax, non-finite numbers, duplicate keys, lone surrogates.
    """
    if text is None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JSONViolation("utf8", f"invalid UTF-8 at byte {exc.start} ({exc.reason})") from None
    if text.startswith("\ufeff"):
        raise JSONViolation("utf8", "starts with a byte order mark")
    _check_depth(text)

    non_finite: list[str] = []
    duplicates: list[str] = []

    def on_constant(name: str) -> float:
        non_finite.append(name)
        return math.nan

    def on_float(literal: str) -> float:
        value = float(literal)
        if math.isinf(value):
            non_finite.append(literal)
        return value

    def on_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) != len(pairs) and not duplicates:
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates.append(key)
                    break
                seen.add(key)
        return obj

    try:
        value = json.loads(text, object_pairs_hook=on_pairs, parse_constant=on_constant, parse_float=on_float)
    except json.JSONDecodeError as exc:
        raise JSONViolation("json", f"{exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # an integer literal past Python's digit limit
        raise JSONViolation("json", f"number out of range: {exc}") from None
    except RecursionError:  # pragma: no cover - _check_depth bounds the nesting first
        raise JSONViolation("json", "nested too deeply") from None
    if non_finite:
        raise JSONViolation("non-finite", f"non-finite number {non_finite[0]}")
    if duplicates:
        raise JSONViolation("duplicate", f"duplicate key {duplicates[0]!r}")
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise JSONViolation("utf8", "escapes a lone UTF-16 surrogate") from None
    return value


class _Undecided:
    """The type of :data:`UNDECIDED`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDECIDED"


#: What :func:`fast_loads` returns when only :func:`loads_strict` can decide.
UNDECIDED: Final = _Undecided()
_SCALARS = (str, int, float, bool, type(None))
_msgspec_decode = msgspec.json.Decoder().decode


def fast_loads(raw: bytes | bytearray) -> Any:
    """UTF-8 JSON ``raw`` as :func:`loads_strict` reads it, or :data:`UNDECIDED`.

    msgspec refuses what the strict reader refuses in every respect but two
    (invalid UTF-8, a BOM, lone surrogate escapes, bad syntax, ``NaN``,
    numbers that overflow or integers past Python's digit limit: each gives a
    msgspec error, hence ``UNDECIDED``, and the strict reader gives the verdict
    and its wording). The two it does not check are ruled out here:

    - duplicate keys: an object's raw text holds exactly one ``:`` per
      top-level key. Every key at any depth brings its own ``:`` (and a ``:``
      inside a string only adds to the count), so equality leaves no nested
      key at all, and no key can repeat;
    - nesting deeper than :data:`MAX_DEPTH`: each level needs a bracket, so
      at most ``MAX_DEPTH`` brackets in the raw text (strings included) bound
      the depth; a short text cannot hold more.

    An array is decided only when its items are scalars (a nested object
    could repeat a key); a scalar always is.
    """
    try:
        value = _msgspec_decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError):
        return UNDECIDED
    kind = type(value)
    if kind is dict:
        if raw.count(b":") == len(value) and (
            len(raw) <= MAX_DEPTH or raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH
        ):
            return value
        return UNDECIDED
    if kind is list:
        for item in value:
            if type(item) not in _SCALARS:
                return UNDECIDED
    return value
