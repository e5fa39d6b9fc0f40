"""The incremental, sans-IO lpjson decoder.

Feed it bytes as they arrive, in any chunks; it returns each message as soon
as its last byte is in. It never touches a socket, a thread or an event loop.

The receive buffer is a ``bytearray`` read through a moving position and
compacted once per :meth:`Decoder.receive_data`, so the cost is linear in the
bytes fed however they are chunked. Each piece of a message (the 2-byte
prefix, the JSON header, the content) is consumed all at once or not at all.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Any, NoReturn

import msgspec

from harness.errors import (
    ContentTooLarge,
    DuplicateKey,
    HeaderNotJSON,
    HeaderNotObject,
    HeaderNotUTF8,
    IncompleteMessage,
    NonFiniteNumber,
    ProtocolError,
    ZeroHeaderLength,
)
from harness.message import Message, _new_message, _set_content, _set_header, check_header
from harness.strictjson import JSONViolation, loads_strict

__all__ = ["DEFAULT_MAX_CONTENT_LENGTH", "Decoder", "DecoderState", "parse_header"]

log = logging.getLogger(__name__)

DEFAULT_MAX_CONTENT_LENGTH = 1 << 20

_VIOLATIONS: dict[str, type[ProtocolError]] = {
    "utf8": HeaderNotUTF8,
    "json": HeaderNotJSON,
    "non-finite": NonFiniteNumber,
    "duplicate": DuplicateKey,
}
_SCALARS = (str, int, float, bool, type(None))
_fast_decode = msgspec.json.Decoder().decode
#: Raw headers remembered per decoder, and the longest one remembered.
_CACHED_HEADERS = 32
_CACHED_HEADER_MAX = 256


class DecoderState(enum.Enum):
    """Where the decoder is in the stream."""

    PREFIX = "prefix"  # waiting for the 2-byte header length
    HEADER = "header"  # waiting for the JSON header
    CONTENT = "content"  # waiting for the content
    CLOSED = "closed"  # close() was called at a message boundary
    FAILED = "failed"  # a ProtocolError was raised; it is raised again on any call


def _parse_header_strict(
    raw: bytes | bytearray, offset: int, max_content_length: int
) -> tuple[dict[str, Any], int]:
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
    """Parse and check one JSON header; return it and its content-length.

    The fast path (msgspec) is taken only for a flat object of scalars whose
    raw text holds exactly one ``:`` per key (so no key can repeat) and whose
    required keys are valid: there the strict reader would return the same
    dict. Everything else is decided by :func:`~harness.strictjson.loads_strict`.
    """
    try:
        header = _fast_decode(raw)
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, ValueError):
        return _parse_header_strict(raw, offset, max_content_length)
    if type(header) is dict and raw.count(b":") == len(header):
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
            and (len(header) == 4 or all(type(v) in _SCALARS for v in header.values()))
        ):
            return header, length
    return _parse_header_strict(raw, offset, max_content_length)


class Decoder:
    """Incremental lpjson decoder.

    ``feed(data)`` returns every message that ``data`` completes; ``close()``
    says the stream ended. A violation raises a :class:`ProtocolError`
    subclass whose ``offset`` is the stream offset of the offending message's
    first byte and whose ``messages`` lists the messages that the same call
    completed before it. After an error the decoder stays failed: every later
    call raises a copy of that error (same class, reason and offset, no
    messages, the original as ``__cause__``); :attr:`error` is the original,
    whose ``messages`` are never changed afterwards.

    The h11-style pair ``receive_data(data)`` / ``next_message()`` gives the
    same results one message at a time.
    """

    def __init__(self, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> None:
        if max_content_length < 0:
            raise ValueError("max_content_length must be >= 0")
        self.max_content_length = max_content_length
        self._buf = bytearray()
        self._pos = 0  # parse position in _buf
        self._base = 0  # stream offset of _buf[0]
        self._state = DecoderState.PREFIX
        self._header_length = 0
        self._header: dict[str, Any] = {}
        self._content_length = 0
        self._error: ProtocolError | None = None
        # Bytes from _pos the piece being read needs (2 + header + content as far as
        # known): feed() skips parsing until they are in.
        self._need = 2
        # Whole messages that close() found buffered, for next_message().
        self._pending: deque[Message] = deque()
        # parse_header's results for the raw headers this stream sent recently (a peer
        # repeats a handful of headers): an exact memo of a pure function, bounded in
        # entries and in key size, only for flat headers (a shallow copy is a full copy).
        self._headers: dict[bytes, tuple[dict[str, Any], int]] = {}
        # Private mode for ServerConnection: feed() and error.messages give (header, content)
        # pairs instead of Message objects, and a header read again from the memo is the
        # memo's own dict, shared: the caller must not modify it.
        self._pairs = False

    # -- introspection ----------------------------------------------------

    @property
    def state(self) -> DecoderState:
        return self._state

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed into a message."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed into a message.

        Whole messages that :meth:`close` parsed for :meth:`next_message` are not counted.
        """
        return len(self._buf) - self._pos

    @property
    def error(self) -> ProtocolError | None:
        return self._error

    @property
    def bytes_needed(self) -> int:
        """Bytes the current message still needs before it (or its next piece) completes."""
        avail = len(self._buf) - self._pos
        state = self._state
        if state is DecoderState.PREFIX:
            return max(0, 2 - avail)
        if state is DecoderState.HEADER:
            return max(0, 2 + self._header_length - avail)
        if state is DecoderState.CONTENT:
            return max(0, 2 + self._header_length + self._content_length - avail)
        return 0

    # -- feeding ----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append ``data`` to the receive buffer (empty data changes nothing)."""
        if self._error is not None or self._state is DecoderState.CLOSED:
            self._refuse()
        if not data:
            return
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        buf += data

    def next_message(self) -> Message | None:
        """The next complete message, or ``None`` when more data is needed."""
        if self._pending:
            return self._pending.popleft()
        messages = self._parse(1)
        return messages[0] if messages else None

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message it completes, in order."""
        if self._error is not None or self._state is DecoderState.CLOSED:
            self._refuse()
        buf = self._buf
        pos = self._pos
        if pos:
            del buf[:pos]
            self._base += pos
            self._pos = 0
        if not buf and type(data) is bytes and len(data) >= self._need:
            # Nothing buffered (the usual case for a peer that sends whole messages):
            # parse ``data`` where it is, and buffer only what is left of it.
            return self._parse(-1, data)
        buf += data
        if len(buf) < self._need:
            # The piece being read is still incomplete: nothing to parse (a trickling
            # peer costs one append per call, whatever the message's size).
            return []
        return self._parse(-1)

    def close(self) -> None:
        """Say the stream ended; raise :class:`IncompleteMessage` if it ended mid-message.

        Whole messages still in the buffer (data given to :meth:`receive_data`
        and not yet taken with :meth:`next_message`) are not an incomplete
        message: they stay available to :meth:`next_message`, or travel on the
        error's ``messages`` when the stream ends with a violation after them.
        """
        if self._error is not None:
            self._raise_again(self._error)
        if self._state is DecoderState.CLOSED:
            return
        if len(self._buf) > self._pos:
            self._pending.extend(self._parse(-1))
        received = len(self._buf) - self._pos
        if self._state is DecoderState.PREFIX and received == 0:
            self._state = DecoderState.CLOSED
            return
        if self._state is DecoderState.PREFIX:
            expected, piece = 2, "the 2-byte header length"
        elif self._state is DecoderState.HEADER:
            expected, piece = 2 + self._header_length, "the JSON header"
        else:
            expected = 2 + self._header_length + self._content_length
            piece = "the content"
        error = IncompleteMessage(
            f"stream ended inside {piece}: the message needs {expected} bytes, {received} came",
            self._base + self._pos,
            expected,
            received,
        )
        pending = list(self._pending)
        self._pending.clear()
        self._fail(error, pending)

    # -- the state machine ------------------------------------------------

    def _refuse(self) -> NoReturn:
        """Raise the error again after a failure, or refuse data after close()."""
        if self._error is not None:
            self._raise_again(self._error)
        raise RuntimeError("the decoder was closed; it takes no more data")

    @staticmethod
    def _raise_again(error: ProtocolError) -> NoReturn:
        """Raise ``error`` once more, as a copy that carries no messages.

        The copy keeps the original's ``messages`` intact for whoever caught
        it first (a caller that saves ``error.messages`` and then calls
        ``close()`` must not find them gone).
        """
        again = type(error).__new__(type(error))
        again.args = error.args
        again.__dict__.update(error.__dict__)
        again.messages = []
        raise again from error

    def _fail(self, error: ProtocolError, messages: list[Message]) -> None:
        error.messages = messages
        self._error = error
        self._state = DecoderState.FAILED
        log.debug("decoder failed: %s", error)
        raise error

    def _parse(self, limit: int, data: bytes | None = None) -> list[Message]:
        """Consume up to ``limit`` whole messages (all of them when ``limit`` < 0).

        The messages come from the buffer, or from ``data`` when the buffer is
        empty; what is left of ``data`` is then buffered.
        """
        if self._error is not None:
            self._raise_again(self._error)
        messages: list[Message] = []
        buf = self._buf
        direct = data is not None
        # Slices of ``src`` are the raw headers and the contents: slices of ``data``
        # are bytes already; the buffer's are copied out through a view (one copy
        # each), released before the buffer can be resized again.
        # (Typed Any: slicing it gives bytes either way once `direct` is accounted for.)
        src: Any = data if data is not None else memoryview(buf)
        pos = self._pos
        end = len(src)
        base = self._base
        state = self._state
        PREFIX, HEADER, CONTENT = DecoderState.PREFIX, DecoderState.HEADER, DecoderState.CONTENT
        header_length = self._header_length
        header = self._header
        content_length = self._content_length
        max_content_length = self.max_content_length
        headers = self._headers
        pairs = self._pairs
        append = messages.append
        try:
            while limit:
                if state is PREFIX:
                    if end - pos < 2:
                        break
                    header_length = (src[pos] << 8) | src[pos + 1]
                    if header_length == 0:
                        raise ZeroHeaderLength(
                            "header length is 0: an empty header is not a JSON object", base + pos
                        )
                    state = HEADER
                if state is HEADER:
                    if end - pos < 2 + header_length:
                        break
                    raw = src[pos + 2 : pos + 2 + header_length]
                    if not direct:
                        raw = bytes(raw)
                    known = headers.get(raw)
                    if known is not None and known[1] <= max_content_length:
                        # A header seen before on this stream: parse_header's result again,
                        # in a dict of its own (Message.header is mutable).
                        header = known[0] if pairs else known[0].copy()
                        content_length = known[1]
                    else:
                        header, content_length = parse_header(raw, base + pos, max_content_length)
                        if header_length <= _CACHED_HEADER_MAX and all(
                            type(value) in _SCALARS for value in header.values()
                        ):
                            if len(headers) >= _CACHED_HEADERS:
                                headers.clear()
                            headers[raw] = (header.copy(), content_length)
                    state = CONTENT
                if state is CONTENT:
                    start = pos + 2 + header_length
                    stop = start + content_length
                    if end < stop:
                        break
                    content = src[start:stop]
                    if not direct:
                        content = bytes(content)
                    if pairs:
                        append((header, content))  # type: ignore[arg-type]
                    else:
                        # Message._trusted, inlined: the header was checked by parse_header.
                        message = _new_message(Message)
                        _set_header(message, header)
                        _set_content(message, content)
                        append(message)
                    pos = stop
                    state = PREFIX
                    limit -= 1
                else:  # CLOSED: close() took everything there was
                    break
        except ProtocolError as error:
            self._settle(pos, data)
            self._header_length = header_length
            self._fail(error, messages)
        finally:
            if data is None:
                src.release()
        self._settle(pos, data)
        self._state = state
        self._header_length = header_length
        self._header = header
        self._content_length = content_length
        if state is PREFIX:
            self._need = 2
        elif state is HEADER:
            self._need = 2 + header_length
        else:
            self._need = 2 + header_length + content_length
        return messages

    def _settle(self, pos: int, data: bytes | None) -> None:
        """Record the parse position ``pos`` (in ``data`` when it was parsed in place)."""
        if data is None:
            self._pos = pos
        else:  # the buffer was empty: keep the rest of data, from stream offset _base + pos
            self._base += pos
            self._pos = 0
            if pos < len(data):
                self._buf += memoryview(data)[pos:]
