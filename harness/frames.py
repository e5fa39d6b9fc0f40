"""The frame layer: raw lpjson frames out of a byte stream, and the one frame writer.

A *frame* is one message as it stands on the wire, before any reading of its
content: the checked JSON header (a dict), the content bytes, and the stream
offset of its first byte (docs/PROTOCOL.md#framing). :class:`FrameReader` is
the sans-IO reader (bytes in, frames out, no socket, thread or event loop);
:func:`frame` is the only place the 2-byte prefix is written. The
:class:`~harness.decoder.Decoder` wraps frames in :class:`~harness.message.Message`
objects; the server's connection, the load generator and the probe read frames.

The receive buffer is a ``bytearray`` read through a moving position and
compacted once per call, so the cost is linear in the bytes fed however they
are chunked. Each piece of a frame (the 2-byte prefix, the JSON header, the
content) is consumed all at once or not at all.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Any, NamedTuple, NoReturn

from harness.errors import IncompleteMessage, ProtocolError, ZeroHeaderLength
from harness.header import DEFAULT_MAX_CONTENT_LENGTH, MAX_HEADER_LENGTH, parse_header

__all__ = ["DEFAULT_MAX_CONTENT_LENGTH", "Frame", "FrameReader", "ReaderState", "frame", "prefix"]

log = logging.getLogger(__name__)

_SCALARS = (str, int, float, bool, type(None))
#: Raw headers remembered per reader, and the longest one remembered.
_CACHED_HEADERS = 32
_CACHED_HEADER_MAX = 256


_CONTENT_LENGTH_KEY = b'"content-length": '
_DIGITS_AND_BRACE = b"0123456789}"


def _shape(raw: bytes) -> tuple[bytes, int] | None:
    """``raw`` up to the digits of its content-length, and the integer they make, when
    ``raw`` ends with ``"content-length": DIGITS}`` (the guide's layout: content-length
    is the last key); ``None`` otherwise, or when the digits are not a plain JSON integer.

    Why two valid flat headers of the same shape differ only in the content-length
    value: the quote that opens ``"content-length": `` is not escaped (the byte before it
    is not a backslash), so it delimits a string; it cannot close one (``content-length``
    would then stand outside a string, which valid JSON does not allow), so the string is
    ``"content-length"``; a string followed by ``:`` is a key; in a flat header it is a
    top-level key, and (no duplicate keys) the only ``content-length`` key. The digits
    after it, up to the closing ``}``, are its whole value: an integer token. Replacing an
    integer token by another changes no verdict of the strict reader (UTF-8, depth,
    syntax, finiteness, keys), so the header read is the known one with the new
    content-length. Runs of 19 digits or more are left to the strict reader.
    """
    head = raw.rstrip(_DIGITS_AND_BRACE)
    digits = raw[len(head) : -1]
    if (
        not digits.isdigit()
        or raw[-1] != 125  # "}"
        or not head.endswith(_CONTENT_LENGTH_KEY)
        or head[-19:-18] == b"\\"  # the quote may be escaped
        or len(digits) > 18
        or (digits[0] == 48 and len(digits) > 1)  # a leading zero is not JSON
    ):
        return None
    return head, int(digits)


def prefix(header_length: int) -> bytes:
    """The 2-byte big-endian header length (docs/PROTOCOL.md#f1): the one place it is written.

    Any value 0..65535 (a prefix that lies about its header is how tests and
    fuzzers build some violations); ``ValueError`` outside that range.
    """
    if not 0 <= header_length <= MAX_HEADER_LENGTH:
        raise ValueError(
            f"a JSON header of {header_length} bytes: the 2-byte prefix holds 0 to {MAX_HEADER_LENGTH}"
        )
    return header_length.to_bytes(2, "big")


def frame(raw_header: bytes, content: bytes = b"") -> bytes:
    """The bytes of one frame: the 2-byte big-endian length of ``raw_header``, it, ``content``.

    Nothing is checked but the prefix's range (``ValueError`` past 65535 bytes),
    so tests and probes can frame any header, valid or not; an empty
    ``raw_header`` gives the zero-header-length violation.
    """
    return prefix(len(raw_header)) + raw_header + content


class Frame(NamedTuple):
    """One frame: its checked ``header`` (every key as received), ``content`` and stream ``offset``.

    The header may be shared with the reader's memo of recent headers: treat
    it as read-only (:class:`~harness.decoder.Decoder` gives each message a
    copy of its own).
    """

    header: dict[str, Any]
    content: bytes
    offset: int


class ReaderState(enum.Enum):
    """Where the reader is in the stream."""

    PREFIX = "prefix"  # waiting for the 2-byte header length
    HEADER = "header"  # waiting for the JSON header
    CONTENT = "content"  # waiting for the content
    CLOSED = "closed"  # close() was called at a frame boundary
    FAILED = "failed"  # a ProtocolError was raised; it is raised again on any call


_new_frame = tuple.__new__
_PREFIX, _HEADER, _CONTENT = ReaderState.PREFIX, ReaderState.HEADER, ReaderState.CONTENT


class FrameReader:
    """Incremental, sans-IO lpjson frame reader.

    ``feed(data)`` returns every frame that ``data`` completes; ``close()``
    says the stream ended. A violation raises a :class:`ProtocolError`
    subclass whose ``offset`` is the stream offset of the offending message's
    first byte and whose ``frames`` lists the frames that the same call
    completed before it. After an error the reader stays failed: every later
    call raises a copy of that error (same class, reason and offset, no
    frames, the original as ``__cause__``); :attr:`error` is the original.

    The h11-style pair ``receive_data(data)`` / ``next_frame()`` gives the
    same results one frame at a time.
    """

    def __init__(self, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> None:
        if max_content_length < 0:
            raise ValueError("max_content_length must be >= 0")
        self.max_content_length = max_content_length
        self._buf = bytearray()
        self._pos = 0  # parse position in _buf
        self._base = 0  # stream offset of _buf[0]
        self._state = _PREFIX
        self._header_length = 0
        self._header: dict[str, Any] = {}
        self._content_length = 0
        self._error: ProtocolError | None = None
        # Bytes from _pos the piece being read needs (2 + header + content as far as
        # known): feed() skips parsing until they are in.
        self._need = 2
        # Whole frames that close() found buffered, for next_frame().
        self._pending: deque[Frame] = deque()
        # parse_header's results for the raw headers this stream sent recently (a peer
        # repeats a handful of headers): an exact memo of a pure function, bounded in
        # entries and in key size, only for flat headers.
        self._headers: dict[bytes, tuple[dict[str, Any], int]] = {}
        # Flat headers by shape (see _read_header), same bounds.
        self._shapes: dict[bytes, dict[str, Any]] = {}

    # -- introspection ----------------------------------------------------

    @property
    def state(self) -> ReaderState:
        return self._state

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed into a frame."""
        return self._base + self._pos

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed into a frame.

        Whole frames that :meth:`close` parsed for :meth:`next_frame` are not counted.
        """
        return len(self._buf) - self._pos

    @property
    def error(self) -> ProtocolError | None:
        return self._error

    @property
    def bytes_needed(self) -> int:
        """Bytes the current frame still needs before it (or its next piece) completes."""
        if self._state in (ReaderState.CLOSED, ReaderState.FAILED):
            return 0
        return max(0, self._need - (len(self._buf) - self._pos))

    # -- feeding ----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append ``data`` to the receive buffer (empty data changes nothing)."""
        if self._error is not None or self._state is ReaderState.CLOSED:
            self._refuse()
        if not data:
            return
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._base += self._pos
            self._pos = 0
        buf += data

    def next_frame(self) -> Frame | None:
        """The next complete frame, or ``None`` when more data is needed."""
        if self._pending:
            return self._pending.popleft()
        if self._error is None and len(self._buf) - self._pos < self._need:
            return None  # the piece being read is still incomplete (a failed reader raises below)
        frames = self._parse(1)
        return frames[0] if frames else None

    def feed(self, data: bytes) -> list[Frame]:
        """Add ``data``; return every frame it completes, in order."""
        if self._error is not None or self._state is ReaderState.CLOSED:
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
        """Say the stream ended; raise :class:`IncompleteMessage` if it ended mid-frame.

        Whole frames still in the buffer (data given to :meth:`receive_data`
        and not yet taken with :meth:`next_frame`) are not an incomplete
        message: they stay available to :meth:`next_frame`, or travel on the
        error's ``frames`` when the stream ends with a violation after them.
        """
        if self._error is not None:
            self._raise_again(self._error)
        if self._state is ReaderState.CLOSED:
            return
        if len(self._buf) > self._pos:
            self._pending.extend(self._parse(-1))
        received = len(self._buf) - self._pos
        if self._state is _PREFIX and received == 0:
            self._state = ReaderState.CLOSED
            return
        piece = {_PREFIX: "the 2-byte header length", _HEADER: "the JSON header"}.get(
            self._state, "the content"
        )
        error = IncompleteMessage(
            f"stream ended inside {piece}: the message needs {self._need} bytes, {received} came",
            self._base + self._pos,
            self._need,
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
        raise RuntimeError("the reader was closed; it takes no more data")

    @staticmethod
    def _raise_again(error: ProtocolError) -> NoReturn:
        """Raise ``error`` once more, as a copy that carries no frames or messages.

        The copy keeps the original's ``frames`` and ``messages`` intact for
        whoever caught it first.
        """
        again = type(error).__new__(type(error))
        again.args = error.args
        again.__dict__.update(error.__dict__)
        again.frames = []
        again.messages = []
        raise again from error

    def _fail(self, error: ProtocolError, frames: list[Frame]) -> NoReturn:
        error.frames = frames
        self._error = error
        self._state = ReaderState.FAILED
        log.debug("frame reader failed: %s", error)
        raise error

    def _parse(self, limit: int, data: bytes | None = None) -> list[Frame]:
        """Consume up to ``limit`` whole frames (all of them when ``limit`` < 0).

        The frames come from the buffer, or from ``data`` when the buffer is
        empty; what is left of ``data`` is then buffered.
        """
        if self._error is not None:
            self._raise_again(self._error)
        frames: list[Frame] = []
        buf = self._buf
        # Slices of ``src`` are the raw headers and the contents. Slices of bytes are
        # bytes already: ``data``, or a copy of the buffer when every whole frame is
        # wanted (one copy per call, cheaper than a copy per piece). For one frame at a
        # time, the buffer's pieces are copied out through a view, released before
        # the buffer can be resized again.
        direct = data is not None or limit < 0
        src: Any = data if data is not None else (bytes(buf) if direct else memoryview(buf))
        pos = self._pos
        end = len(src)
        base = self._base
        state = self._state
        header_length = self._header_length
        header = self._header
        content_length = self._content_length
        max_content_length = self.max_content_length
        headers = self._headers
        append = frames.append
        new_frame = _new_frame
        try:
            if direct and state is _PREFIX:
                # The hot loop, frame after frame while each is whole. A frame whose
                # prefix or header is not all here, a zero prefix, or a remembered header
                # over a lowered limit stops it, and the state machine below takes that
                # frame from its beginning; one whose content is not all here is handed
                # to it in the CONTENT state.
                read_header = self._read_header
                while True:
                    start = pos + 2
                    stop = start + ((src[pos] << 8) | src[pos + 1]) if start <= end else end + 1
                    if stop > end or stop == start:
                        break
                    raw = src[start:stop]
                    known = headers.get(raw)
                    if known is None:
                        known = read_header(raw, base + pos)
                    elif known[1] > max_content_length:
                        break
                    header, content_length = known
                    start = stop + content_length
                    if start > end:
                        state = _CONTENT
                        header_length = stop - pos - 2
                        break
                    append(new_frame(Frame, (header, src[stop:start], base + pos)))
                    pos = start
            while limit:
                if state is _PREFIX:
                    if end - pos < 2:
                        break
                    header_length = (src[pos] << 8) | src[pos + 1]
                    if header_length == 0:
                        raise ZeroHeaderLength(
                            "header length is 0: an empty header is not a JSON object", base + pos
                        )
                    state = _HEADER
                if state is _HEADER:
                    if end - pos < 2 + header_length:
                        break
                    raw = src[pos + 2 : pos + 2 + header_length]
                    if not direct:
                        raw = bytes(raw)
                    known = headers.get(raw)
                    if known is not None and known[1] <= max_content_length:
                        header, content_length = known
                    else:
                        header, content_length = self._read_header(raw, base + pos)
                    state = _CONTENT
                if state is _CONTENT:
                    start = pos + 2 + header_length
                    stop = start + content_length
                    if end < stop:
                        break
                    content = src[start:stop]
                    if not direct:
                        content = bytes(content)
                    append(_new_frame(Frame, (header, content, base + pos)))
                    pos = stop
                    state = _PREFIX
                    limit -= 1
                else:  # CLOSED: close() took everything there was
                    break
        except ProtocolError as error:
            self._settle(pos, data)
            self._header_length = header_length
            self._fail(error, frames)
        finally:
            if not direct:
                src.release()
        self._settle(pos, data)
        self._state = state
        self._header_length = header_length
        self._header = header
        self._content_length = content_length
        if state is _PREFIX:
            self._need = 2
        elif state is _HEADER:
            self._need = 2 + header_length
        else:
            self._need = 2 + header_length + content_length
        return frames

    def _read_header(self, raw: bytes, offset: int) -> tuple[dict[str, Any], int]:
        """:func:`parse_header` of a raw header not in the memo, remembering what can be.

        Besides the exact memo (raw header -> result), a *shape* memo maps a
        flat header with its content-length digits taken out to the parsed
        header: a peer's headers mostly differ in content-length alone. A raw
        header of a known shape is the known header with another integer in
        the same place, so its strict reading is the known one with that
        content-length (see :func:`_shape` for why the place found is the
        value of the content-length key).
        """
        limit = self.max_content_length
        if len(raw) > _CACHED_HEADER_MAX:
            return parse_header(raw, offset, limit)
        headers = self._headers
        if len(headers) >= _CACHED_HEADERS:
            headers.clear()
        shape = _shape(raw)
        if shape is not None:
            known = self._shapes.get(shape[0])
            if known is not None and shape[1] <= limit:
                header = known.copy()
                header["content-length"] = shape[1]
                result = headers[raw] = (header, shape[1])
                return result
        result = parse_header(raw, offset, limit)
        header = result[0]
        for value in header.values():
            if type(value) not in _SCALARS:
                return result
        headers[raw] = result
        if shape is not None and shape[1] == result[1]:
            shapes = self._shapes
            if len(shapes) >= _CACHED_HEADERS:
                shapes.clear()
            shapes[shape[0]] = header
        return result

    def _settle(self, pos: int, data: bytes | None) -> None:
        """Record the parse position ``pos`` (in ``data`` when it was parsed in place)."""
        if data is None:
            self._pos = pos
        else:  # the buffer was empty: keep the rest of data, from stream offset _base + pos
            self._base += pos
            self._pos = 0
            if pos < len(data):
                self._buf += memoryview(data)[pos:]
