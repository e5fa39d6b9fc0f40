"""A correct lpjson decoder written from docs/PROTOCOL.md alone, with the standard library.

Incremental (a ``bytearray`` consumed from the front), with the spec's check order and
harness's error codes (``error_code``). The naive decoders of this package are this one
with one mistake each: the hooks (``parse_json``, ``check_values``, ``read_content``,
``max_content_length``, ``close``) are where they make it.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 200
REQUIRED = ("byteorder", "content-type", "content-encoding", "content-length")
LIMIT = 1 << 20


class LpjsonError(Exception):
    """A violation; ``code`` is the spec's, ``messages`` what the same feed() completed before it."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.messages: list[tuple[dict[str, Any], Any]] = []


class _NonFinite(Exception):
    pass


def _depth(text: str) -> int:
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


def _surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, list):
        return any(_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_surrogate(k) or _surrogate(v) for k, v in value.items())
    return False


class Decoder:
    max_content_length = LIMIT

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._header_length: int | None = None
        self._header: dict[str, Any] | None = None
        self._failed: LpjsonError | None = None

    @staticmethod
    def error_code(exc: BaseException) -> str | None:
        return exc.code if isinstance(exc, LpjsonError) else None

    # -- the hooks ----------------------------------------------------------------

    def parse_json(self, text: str) -> Any:
        """Strict JSON (H2-H4): syntax first, then non-finite numbers, then repeated keys."""
        flags = {"non_finite": False, "duplicate": False}

        def constant(name: str) -> float:
            flags["non_finite"] = True
            return 0.0

        def number(literal: str) -> float:
            value = float(literal)
            flags["non_finite"] |= math.isinf(value)
            return value

        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            flags["duplicate"] |= len({k for k, _ in items}) != len(items)
            return dict(items)

        try:
            value = json.loads(text, parse_constant=constant, parse_float=number, object_pairs_hook=pairs)
        except (ValueError, RecursionError) as exc:
            raise LpjsonError("header-not-json", str(exc)) from None
        if flags["non_finite"]:
            raise LpjsonError("non-finite-number")
        if flags["duplicate"]:
            raise LpjsonError("duplicate-key")
        return value

    def check_values(self, header: dict[str, Any]) -> None:
        """H7: the four required values."""
        if not isinstance(header["byteorder"], str) or header["byteorder"] not in ("little", "big"):
            raise LpjsonError("invalid-header-value", "byteorder")
        for key in ("content-type", "content-encoding"):
            if not isinstance(header[key], str) or not header[key]:
                raise LpjsonError("invalid-header-value", key)
        length = header["content-length"]
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise LpjsonError("invalid-header-value", "content-length")

    def read_content(self, header: dict[str, Any], content: bytes) -> Any:
        """What the message carries: the bytes, unread (C5: content is checked only when read)."""
        return content

    # -- decoding -----------------------------------------------------------------

    def read_header(self, raw: bytes) -> dict[str, Any]:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise LpjsonError("header-not-utf8", str(exc)) from None
        if text.startswith("\ufeff"):
            raise LpjsonError("header-not-utf8", "BOM")
        if _depth(text) > MAX_DEPTH:
            raise LpjsonError("header-not-json", "too deep")
        header = self.parse_json(text)
        if _surrogate(header):
            raise LpjsonError("header-not-utf8", "lone surrogate")
        if not isinstance(header, dict):
            raise LpjsonError("header-not-object")
        missing = [key for key in REQUIRED if key not in header]
        if missing:
            raise LpjsonError("missing-header-key", ", ".join(missing))
        self.check_values(header)
        if header["content-length"] > self.max_content_length:
            raise LpjsonError("content-too-large")
        return header

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], Any]]:
        if self._failed is not None:
            raise self._failed
        self._buffer += data
        out: list[tuple[dict[str, Any], Any]] = []
        try:
            while True:
                message = self._next()
                if message is None:
                    return out
                out.append(message)
        except LpjsonError as error:
            error.messages = out
            self._failed = error
            raise

    def _next(self) -> tuple[dict[str, Any], Any] | None:
        buffer = self._buffer
        if self._header_length is None:
            if len(buffer) < 2:
                return None
            length = int.from_bytes(buffer[:2], "big")
            if length == 0:
                raise LpjsonError("zero-header-length")
            self._header_length = length
            del buffer[:2]
        if self._header is None:
            if len(buffer) < self._header_length:
                return None
            self._header = self.read_header(bytes(buffer[: self._header_length]))
            del buffer[: self._header_length]
        size = self._header["content-length"]
        if len(buffer) < size:
            return None
        content = bytes(buffer[:size])
        del buffer[:size]
        header, self._header, self._header_length = self._header, None, None
        return header, self.read_content(header, content)

    def close(self) -> None:
        if self._failed is not None:
            raise self._failed
        if self._buffer or self._header_length is not None:
            self._failed = LpjsonError("incomplete-message")
            raise self._failed


factory = Decoder
