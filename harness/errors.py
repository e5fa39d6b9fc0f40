"""The protocol's one error family.

Every way a byte stream can break the lpjson protocol has its own subclass of
:class:`ProtocolError`, with a stable ``code`` (sent to peers in the reference
server's error message, listed in docs/PROTOCOL.md#error-codes) and the stream
``offset`` of the first byte of the offending message.

These errors are for what a *peer* sent. The families :class:`ProtocolError`,
:class:`HeaderError` and :class:`ContentError` group the codes and cannot be
raised themselves; a caller's own mistake (building an invalid message,
encoding an oversize header) is a ``ValueError`` or ``TypeError``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from harness.frames import Frame
    from harness.message import Message

__all__ = [
    "ERROR_CLASSES",
    "ContentError",
    "ContentNotDecodable",
    "ContentNotJSON",
    "ContentTooLarge",
    "DuplicateKey",
    "HeaderError",
    "HeaderNotJSON",
    "HeaderNotObject",
    "HeaderNotUTF8",
    "IncompleteMessage",
    "InvalidHeaderValue",
    "MissingHeaderKey",
    "NonFiniteNumber",
    "ProtocolError",
    "UnsupportedEncoding",
    "ZeroHeaderLength",
]


class ProtocolError(Exception):
    """A violation of the lpjson protocol.

    ``offset`` is the stream offset of the first byte of the offending message
    (``None`` when the error concerns a message outside any stream).
    ``messages`` holds the messages that the same :meth:`Decoder.feed` call
    completed before the violation, so that nothing already received is lost
    (``frames``: the same, from :meth:`FrameReader.feed`).
    """

    code: ClassVar[str] = "protocol-error"
    #: Set on the families, which only group the concrete violations below.
    _abstract: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._abstract = "_abstract" in cls.__dict__ and cls.__dict__["_abstract"]

    def __init__(self, reason: str, offset: int | None = None) -> None:
        if self._abstract:
            raise TypeError(
                f"{type(self).__name__} groups violations and cannot be raised itself: "
                f"raise one of its subclasses (harness.errors.ERROR_CLASSES)"
            )
        super().__init__(reason)
        self.reason = reason
        self.offset = offset
        self.messages: list[Message] = []
        self.frames: list[Frame] = []

    def __str__(self) -> str:
        where = "" if self.offset is None else f" (message at stream offset {self.offset})"
        return f"{self.code}: {self.reason}{where}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, offset={self.offset!r})"


class HeaderError(ProtocolError):
    """The 2-byte prefix or the JSON header breaks the protocol."""

    code = "invalid-header"
    _abstract = True


class ZeroHeaderLength(HeaderError):
    """The proto-header announces a JSON header of length 0."""

    code = "zero-header-length"


class HeaderNotUTF8(HeaderError):
    """The JSON header is not strict UTF-8 (or starts with a BOM, or escapes a lone surrogate)."""

    code = "header-not-utf8"


class HeaderNotJSON(HeaderError):
    """The JSON header is not one JSON text (RFC 8259), or nests too deeply."""

    code = "header-not-json"


class NonFiniteNumber(HeaderError):
    """The JSON header holds ``NaN``, ``Infinity`` or a number that overflows to infinity."""

    code = "non-finite-number"


class DuplicateKey(HeaderError):
    """A JSON object in the header repeats a key."""

    code = "duplicate-key"


class HeaderNotObject(HeaderError):
    """The JSON header is valid JSON but not an object."""

    code = "header-not-object"


class MissingHeaderKey(HeaderError):
    """A required header key is missing."""

    code = "missing-header-key"


class InvalidHeaderValue(HeaderError):
    """A required header key has a value of the wrong type or out of range."""

    code = "invalid-header-value"


class ContentTooLarge(HeaderError):
    """``content-length`` exceeds the receiver's limit (raised before any content is buffered)."""

    code = "content-too-large"


class IncompleteMessage(ProtocolError):
    """The stream ended in the middle of a message.

    ``expected`` is the number of bytes the message needs as far as known
    (2 while the prefix is incomplete, then 2 + header length, then the whole
    message); ``received`` the number of its bytes that arrived.
    """

    code = "incomplete-message"

    def __init__(self, reason: str, offset: int | None, expected: int, received: int) -> None:
        super().__init__(reason, offset)
        self.expected = expected
        self.received = received


class ContentError(ProtocolError):
    """A ``text/json`` message's content cannot be read as JSON text."""

    code = "invalid-content"
    _abstract = True


class UnsupportedEncoding(ContentError):
    """The content-encoding of a ``text/json`` message is not on the allow-list."""

    code = "unsupported-encoding"


class ContentNotDecodable(ContentError):
    """The content is not valid text in its declared content-encoding."""

    code = "content-not-decodable"


class ContentNotJSON(ContentError):
    """The decoded content is not one strict JSON value."""

    code = "content-not-json"


#: Every concrete violation class, by code.
ERROR_CLASSES: dict[str, type[ProtocolError]] = {
    cls.code: cls
    for cls in (
        ZeroHeaderLength,
        HeaderNotUTF8,
        HeaderNotJSON,
        NonFiniteNumber,
        DuplicateKey,
        HeaderNotObject,
        MissingHeaderKey,
        InvalidHeaderValue,
        ContentTooLarge,
        IncompleteMessage,
        UnsupportedEncoding,
        ContentNotDecodable,
        ContentNotJSON,
    )
}
