"""The lpjson message and its encoder.

A :class:`Message` is a JSON header (a dict holding every key as received,
extension keys included) plus the content bytes. :meth:`Message.encode` writes
exactly the bytes the guide's client and server write: the header through
``json.dumps(..., ensure_ascii=False)`` with the required keys in the guide's
order, extension keys after them.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from harness.errors import (
    ContentNotDecodable,
    ContentNotJSON,
    InvalidHeaderValue,
    MissingHeaderKey,
    UnsupportedEncoding,
)
from harness.strictjson import JSONViolation, loads_strict

__all__ = [
    "BINARY_ENCODING",
    "JSON_CONTENT_TYPE",
    "MAX_HEADER_LENGTH",
    "REQUIRED_KEYS",
    "TEXT_ENCODINGS",
    "Message",
    "check_header",
]

#: The required header keys, in the order the guide writes them.
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
#: Text encodings a ``text/json`` content may declare (compared case-insensitively).
TEXT_ENCODINGS = frozenset({"utf-8", "utf-16", "utf-32", "ascii", "latin-1"})
JSON_CONTENT_TYPE = "text/json"
BINARY_ENCODING = "binary"
#: The 2-byte prefix caps the JSON header at this many bytes.
MAX_HEADER_LENGTH = 0xFFFF
BYTEORDERS = ("little", "big")


def check_header(header: dict[str, Any], offset: int | None = None) -> int:
    """Check the required keys of ``header``; return its content-length.

    Raises :class:`MissingHeaderKey` or :class:`InvalidHeaderValue`. Missing
    keys are reported before bad values; both in the guide's key order.
    """
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        raise MissingHeaderKey("missing required key " + ", ".join(map(repr, missing)), offset)
    byteorder = header["byteorder"]
    if byteorder not in BYTEORDERS or type(byteorder) is not str:
        raise InvalidHeaderValue(f"byteorder must be 'little' or 'big', not {byteorder!r:.80}", offset)
    for key in ("content-type", "content-encoding"):
        value = header[key]
        if type(value) is not str or not value:
            raise InvalidHeaderValue(f"{key} must be a non-empty string, not {value!r:.80}", offset)
    length = header["content-length"]
    if type(length) is not int or length < 0:
        raise InvalidHeaderValue(f"content-length must be an integer >= 0, not {length!r:.80}", offset)
    return length


def _string_keys(value: Any) -> bool:
    """Whether every dict in ``value`` has only ``str`` keys."""
    if isinstance(value, dict):
        return all(type(key) is str and _string_keys(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_string_keys(item) for item in value)
    return True


_SCALARS = (str, int, float, bool, type(None))
_UNDECIDED = object()
_msgspec_decode = msgspec.json.Decoder().decode


def _fast_json(raw: bytes) -> Any:
    """UTF-8 JSON ``raw`` read by msgspec where the strict reader provably gives the same
    value, else ``_UNDECIDED``.

    msgspec refuses invalid UTF-8, a BOM, lone surrogate escapes, ``NaN`` and
    numbers that overflow, like the strict reader (anything it refuses goes to
    the strict reader, for the verdict and the error's wording). What it does
    not check, duplicate keys and nesting depth, is ruled out here: the value
    is a scalar, or a flat array or object of scalars, and an object's raw text
    holds exactly one ``:`` per key (so no key repeats).
    """
    try:
        value = _msgspec_decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError):
        return _UNDECIDED
    kind = type(value)
    if kind is dict:
        if raw.count(b":") == len(value) and all(type(item) in _SCALARS for item in value.values()):
            return value
        return _UNDECIDED
    if kind is list:
        return value if all(type(item) in _SCALARS for item in value) else _UNDECIDED
    return value


@lru_cache(maxsize=256)
def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Message:
    """One lpjson message: ``header`` (every key as received) and ``content``.

    The constructor checks the header's required keys and that
    ``content-length`` matches ``len(content)``. Messages compare equal when
    their headers (as dicts) and contents are equal.
    """

    header: dict[str, Any]
    content: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.header, dict):
            raise TypeError("header must be a dict")
        if not isinstance(self.content, bytes):
            raise TypeError("content must be bytes")
        length = check_header(self.header)
        if length != len(self.content):
            raise InvalidHeaderValue(
                f"content-length is {length} but the content has {len(self.content)} bytes"
            )

    __hash__ = None  # type: ignore[assignment]  # the header is a mutable dict

    @classmethod
    def _trusted(cls, header: dict[str, Any], content: bytes) -> Message:
        """Build a message the decoder has already checked (skips validation)."""
        message = _new_message(cls)
        _set_header(message, header)
        _set_content(message, content)
        return message

    # -- building ---------------------------------------------------------

    @classmethod
    def from_json(
        cls,
        value: Any,
        *,
        encoding: str = "utf-8",
        content_type: str = JSON_CONTENT_TYPE,
        byteorder: str = sys.byteorder,
        extra_headers: dict[str, Any] | None = None,
    ) -> Message:
        """A message whose content is ``value`` as JSON text, the way the guide writes it."""
        if encoding.lower() not in TEXT_ENCODINGS:
            raise UnsupportedEncoding(f"content-encoding {encoding!r} is not a supported text encoding")
        content = json.dumps(value, ensure_ascii=False, allow_nan=False).encode(encoding)
        return cls.from_bytes(
            content,
            content_type=content_type,
            encoding=encoding,
            byteorder=byteorder,
            extra_headers=extra_headers,
        )

    @classmethod
    def from_bytes(
        cls,
        content: bytes,
        *,
        content_type: str = "binary/custom-client-binary-type",
        encoding: str = BINARY_ENCODING,
        byteorder: str = sys.byteorder,
        extra_headers: dict[str, Any] | None = None,
    ) -> Message:
        """A message carrying ``content`` as is."""
        header: dict[str, Any] = {
            "byteorder": byteorder,
            "content-type": content_type,
            "content-encoding": encoding,
            "content-length": len(content),
        }
        if extra_headers:
            for key, value in extra_headers.items():
                if key in header:
                    raise ValueError(f"extra_headers may not set the required key {key!r}")
                header[key] = value
        return cls(header, bytes(content))

    # -- reading ----------------------------------------------------------

    @property
    def content_type(self) -> str:
        return self.header["content-type"]  # type: ignore[no-any-return]

    @property
    def content_encoding(self) -> str:
        return self.header["content-encoding"]  # type: ignore[no-any-return]

    @property
    def byteorder(self) -> str:
        return self.header["byteorder"]  # type: ignore[no-any-return]

    @property
    def is_json(self) -> bool:
        return bool(self.header["content-type"] == JSON_CONTENT_TYPE)

    def text(self) -> str:
        """The content decoded through its content-encoding, if that is on the allow-list.

        Raises :class:`UnsupportedEncoding` or :class:`ContentNotDecodable`.
        """
        encoding = self.content_encoding
        if encoding.lower() not in TEXT_ENCODINGS:
            raise UnsupportedEncoding(
                f"content-encoding {encoding!r:.80} is not one of {sorted(TEXT_ENCODINGS)}"
            )
        try:
            return self.content.decode(encoding)
        except UnicodeDecodeError as exc:
            raise ContentNotDecodable(
                f"content is not valid {encoding} at byte {exc.start} ({exc.reason})"
            ) from None

    def json(self) -> Any:
        """The ``text/json`` content as a Python value, read strictly.

        Raises a :class:`~harness.errors.ContentError` subclass when the
        message is not ``text/json``, its encoding is not allowed, its bytes
        do not decode or its text is not one strict JSON value.
        """
        if not self.is_json:
            raise ContentNotJSON(f"content-type is {self.content_type!r:.80}, not {JSON_CONTENT_TYPE!r}")
        if self.content_encoding.lower() == "utf-8":
            value = _fast_json(self.content)
            if value is not _UNDECIDED:
                return value
        text = self.text()
        try:
            return loads_strict(self.content, text)
        except JSONViolation as exc:
            raise ContentNotJSON(f"content is not strict JSON: {exc.reason}") from None

    # -- writing ----------------------------------------------------------

    def encode(self) -> bytes:
        """The message's bytes on the wire, byte-exact with the guide's encoder.

        Raises ``ValueError`` when the JSON header would exceed 65535 bytes
        (or holds something JSON cannot carry).
        """
        header = self.header
        if len(header) == 4:
            # The common case, spelled out: json.dumps of the whole dict gives the same bytes.
            text = (
                f'{{"byteorder": {_json_str(header["byteorder"])}, '
                f'"content-type": {_json_str(header["content-type"])}, '
                f'"content-encoding": {_json_str(header["content-encoding"])}, '
                f'"content-length": {header["content-length"]}}}'
            )
        else:
            ordered = {key: header[key] for key in REQUIRED_KEYS}
            for key, value in header.items():
                ordered.setdefault(key, value)
            if not _string_keys(ordered):
                # json.dumps would write 1 as "1": {1: .., "1": ..} would repeat a key on the wire.
                raise ValueError("every key in the header (nested objects included) must be a str")
            try:
                text = json.dumps(ordered, ensure_ascii=False, allow_nan=False)
            except TypeError as exc:
                raise ValueError(f"the header holds a value JSON cannot carry: {exc}") from None
        raw = text.encode("utf-8")
        if len(raw) > MAX_HEADER_LENGTH:
            raise ValueError(f"JSON header of {len(raw)} bytes exceeds {MAX_HEADER_LENGTH}")
        return len(raw).to_bytes(2, "big") + raw + self.content

    def __repr__(self) -> str:
        content = self.content if len(self.content) <= 64 else self.content[:64] + b"..."
        return f"Message(header={self.header!r}, content={content!r})"


# The slot descriptors of the frozen dataclass: setting through them skips the
# frozen __setattr__ (the decoder builds one message per header it has checked).
_new_message = object.__new__
_set_header = Message.__dict__["header"].__set__
_set_content = Message.__dict__["content"].__set__
