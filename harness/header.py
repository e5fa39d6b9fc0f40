"""The JSON header's rules (docs/PROTOCOL.md#h1 to #h8 and #l1), in one place.

:func:`check_header` holds a header dict to the required keys and values
(H6, H7); :func:`parse_header` reads a raw header as a peer sent it (H1 to H5)
and applies the content limit (L1). The frame reader, the message class and
the load generator all call these two.
"""

from __future__ import annotations

from typing import Any

from harness.errors import (
    ContentTooLarge,
    DuplicateKey,
    HeaderNotJSON,
    HeaderNotObject,
    HeaderNotUTF8,
    InvalidHeaderValue,
    MissingHeaderKey,
    NonFiniteNumber,
    ProtocolError,
)
from harness.strictjson import UNDECIDED, JSONViolation, fast_loads, loads_strict

__all__ = [
    "BYTEORDERS",
    "DEFAULT_MAX_CONTENT_LENGTH",
    "MAX_HEADER_LENGTH",
    "REQUIRED_KEYS",
    "check_header",
    "parse_header",
    "parse_header_strict",
]

#: The required header keys, in the order the guide writes them.
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")
BYTEORDERS = ("little", "big")
#: The 2-byte prefix caps the JSON header at this many bytes.
MAX_HEADER_LENGTH = 0xFFFF
#: The default content limit (docs/PROTOCOL.md#l1).
DEFAULT_MAX_CONTENT_LENGTH = 1 << 20

_VIOLATIONS: dict[str, type[ProtocolError]] = {
    "utf8": HeaderNotUTF8,
    "json": HeaderNotJSON,
    "non-finite": NonFiniteNumber,
    "duplicate": DuplicateKey,
}


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


def parse_header_strict(
    raw: bytes | bytearray, offset: int = 0, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
) -> tuple[dict[str, Any], int]:
    """:func:`parse_header` through the strict reader alone (the definition the fast path must meet)."""
    try:
        header = loads_strict(raw)
    except JSONViolation as exc:
        raise _VIOLATIONS[exc.kind](f"JSON header: {exc.reason}", offset) from None
    if type(header) is not dict:
        raise HeaderNotObject(f"JSON header is a {type(header).__name__}, not an object", offset)
    return header, _check_limit(header, offset, max_content_length)


def _check_limit(header: dict[str, Any], offset: int, max_content_length: int) -> int:
    length = check_header(header, offset)
    if length > max_content_length:
        raise ContentTooLarge(
            f"content-length {length} exceeds the limit of {max_content_length} bytes", offset
        )
    return length


def parse_header(
    raw: bytes | bytearray, offset: int = 0, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
) -> tuple[dict[str, Any], int]:
    """Parse and check one raw JSON header; return it and its content-length.

    ``offset`` (the stream offset of the message) goes on the error raised.
    A header that :func:`~harness.strictjson.fast_loads` decides and whose
    required keys are valid is returned as is; everything else (every
    violation included) is decided by :func:`parse_header_strict`, so the
    verdict and the error's wording are the strict reader's.
    """
    header = fast_loads(raw)
    if header is not UNDECIDED and type(header) is dict:
        # dict.get() of a missing key gives None, which fails every test below.
        get = header.get
        length = get("content-length")
        byteorder = get("byteorder")
        content_type = get("content-type")
        encoding = get("content-encoding")
        if (
            type(length) is int
            and 0 <= length <= max_content_length
            and (byteorder == "little" or byteorder == "big")
            and type(byteorder) is str
            and type(content_type) is str
            and content_type
            and type(encoding) is str
            and encoding
        ):
            return header, length
    return parse_header_strict(raw, offset, max_content_length)
