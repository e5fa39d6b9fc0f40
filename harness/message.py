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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from operator import itemgetter
from typing import Any

from harness.errors import (
    ContentNotDecodable,
    ContentNotJSON,
    ProtocolError,
    UnsupportedEncoding,
)
from harness.frames import Frame, frame
from harness.header import MAX_HEADER_LENGTH, REQUIRED_KEYS, check_header
from harness.strictjson import UNDECIDED, JSONViolation, fast_loads, loads_strict

__all__ = [
    "BINARY_ENCODING",
    "JSON_CONTENT_TYPE",
    "MAX_HEADER_LENGTH",
    "REQUIRED_KEYS",
    "TEXT_ENCODINGS",
    "Message",
    "check_header",
    "error_message",
    "error_response",
]

#: Text encodings a ``text/json`` content may declare (compared case-insensitively).
TEXT_ENCODINGS = frozenset({"utf-8", "utf-16", "utf-32", "ascii", "latin-1"})
JSON_CONTENT_TYPE = "text/json"
BINARY_ENCODING = "binary"


def _string_keys(value: Any) -> bool:
    """Whether every dict in ``value`` has only ``str`` keys."""
    if isinstance(value, dict):
        return all(type(key) is str and _string_keys(item) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return all(_string_keys(item) for item in value)
    return True


@lru_cache(maxsize=256)
def _json_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class Message:
    """One lpjson message: ``header`` (every key as received) and ``content``.

    The constructor checks the header's required keys and that
    ``content-length`` matches ``len(content)``, and raises ``TypeError`` or
    ``ValueError`` (building a bad message is the caller's mistake, not a
    peer's: protocol errors are for bytes that came from a peer). Messages
    compare equal when their headers (as dicts) and contents are equal.
    """

    header: dict[str, Any]
    content: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.header, dict):
            raise TypeError("header must be a dict")
        if not isinstance(self.content, bytes):
            raise TypeError("content must be bytes")
        try:
            length = check_header(self.header)
        except ProtocolError as exc:
            raise ValueError(f"invalid message header: {exc.reason}") from None
        if length != len(self.content):
            raise ValueError(f"content-length is {length} but the content has {len(self.content)} bytes")

    __hash__ = None  # type: ignore[assignment]  # the header is a mutable dict

    @classmethod
    def _trusted(cls, header: dict[str, Any], content: bytes) -> Message:
        """Build a message the decoder has already checked (skips validation)."""
        message = _new_message(cls)
        _set_header(message, header)
        _set_content(message, content)
        return message

    @classmethod
    def from_frame(cls, frame: Frame) -> Message:
        """The message of a frame read by :class:`~harness.frames.FrameReader` (already
        checked), with a header dict of its own."""
        return _messages_from_frames([frame])[0]

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
        """A message whose content is ``value`` as JSON text, the way the guide writes it.

        ``ValueError`` when ``encoding`` is not on the allow-list, or ``value``
        holds something JSON cannot carry (``NaN`` included).
        """
        if encoding.lower() not in TEXT_ENCODINGS:
            raise ValueError(
                f"content-encoding {encoding!r} is not one of the text encodings {sorted(TEXT_ENCODINGS)}"
            )
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
            value = fast_loads(self.content)
            if value is not UNDECIDED:
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
        return frame(text.encode("utf-8"), self.content)

    def __repr__(self) -> str:
        content = self.content if len(self.content) <= 64 else self.content[:64] + b"..."
        return f"Message(header={self.header!r}, content={content!r})"


# The slot descriptors of the frozen dataclass: setting through them skips the
# frozen __setattr__ (the decoder builds one message per frame it has checked).
_new_message = object.__new__
_set_header = Message.__dict__["header"].__set__
_set_content = Message.__dict__["content"].__set__


def _messages_from_frames(frames: list[Frame]) -> list[Message]:
    """One :class:`Message` per checked frame, each with a header dict of its own.

    Written as chains of C-level ``map`` calls (no Python-level step per message):
    this is the decoder's whole cost on top of the frame reader.
    """
    messages = list(map(_new_message, repeat(Message, len(frames))))
    _consume(map(_set_header, messages, map(_copy_dict, map(_first, frames))))
    _consume(map(_set_content, messages, map(_second, frames)))
    return messages


_first = itemgetter(0)
_second = itemgetter(1)
_copy_dict = dict.copy
_consume: Callable[[Iterable[Any]], None] = deque(maxlen=0).extend


def error_message(code: str, detail: str) -> Message:
    """An error message of docs/PROTOCOL.md#s6: ``{"error": code, "detail": detail}`` as text/json."""
    return Message.from_json({"error": code, "detail": detail}, byteorder=sys.byteorder)


def error_response(error: ProtocolError) -> Message:
    """The error message that answers ``error`` (docs/PROTOCOL.md#s6): its code and its reason."""
    return error_message(error.code, error.reason)
