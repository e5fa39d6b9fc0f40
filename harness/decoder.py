"""The incremental, sans-IO lpjson decoder: frames wrapped in :class:`Message` objects.

Feed it bytes as they arrive, in any chunks; it returns each message as soon
as its last byte is in. It is a thin layer over
:class:`~harness.frames.FrameReader` (which does the framing and the header
checks): each frame becomes a :class:`Message` with a header dict of its own.
"""

from __future__ import annotations

from typing import NoReturn

from harness.errors import ProtocolError
from harness.frames import DEFAULT_MAX_CONTENT_LENGTH, FrameReader, ReaderState
from harness.header import parse_header
from harness.message import Message, _messages_from_frames

__all__ = ["DEFAULT_MAX_CONTENT_LENGTH", "Decoder", "DecoderState", "parse_header"]

#: The decoder's state is its frame reader's.
DecoderState = ReaderState


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
        self._reader = FrameReader(max_content_length)

    # -- introspection (the reader's) ---------------------------------------

    @property
    def max_content_length(self) -> int:
        """The content limit (docs/PROTOCOL.md#l1); it may be changed between calls."""
        return self._reader.max_content_length

    @max_content_length.setter
    def max_content_length(self, value: int) -> None:
        if value < 0:
            raise ValueError("max_content_length must be >= 0")
        self._reader.max_content_length = value

    @property
    def state(self) -> ReaderState:
        return self._reader.state

    @property
    def offset(self) -> int:
        """Stream offset of the first byte not yet consumed into a message."""
        return self._reader.offset

    @property
    def buffered(self) -> int:
        """Bytes received and not yet parsed into a message.

        Whole messages that :meth:`close` parsed for :meth:`next_message` are not counted.
        """
        return self._reader.buffered

    @property
    def error(self) -> ProtocolError | None:
        return self._reader.error

    @property
    def bytes_needed(self) -> int:
        """Bytes the current message still needs before it (or its next piece) completes."""
        return self._reader.bytes_needed

    # -- feeding ----------------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Append ``data`` to the receive buffer (empty data changes nothing)."""
        self._reader.receive_data(data)

    def next_message(self) -> Message | None:
        """The next complete message, or ``None`` when more data is needed."""
        try:
            frame = self._reader.next_frame()
        except ProtocolError as error:
            _wrap_error(error)
        return None if frame is None else _messages_from_frames([frame])[0]

    def feed(self, data: bytes) -> list[Message]:
        """Add ``data``; return every message it completes, in order."""
        try:
            frames = self._reader.feed(data)
        except ProtocolError as error:
            _wrap_error(error)
        return _messages_from_frames(frames)

    def close(self) -> None:
        """Say the stream ended; raise :class:`IncompleteMessage` if it ended mid-message.

        Whole messages still in the buffer (data given to :meth:`receive_data`
        and not yet taken with :meth:`next_message`) are not an incomplete
        message: they stay available to :meth:`next_message`, or travel on the
        error's ``messages`` when the stream ends with a violation after them.
        """
        try:
            self._reader.close()
        except ProtocolError as error:
            _wrap_error(error)


def _wrap_error(error: ProtocolError) -> NoReturn:
    """Raise the reader's ``error`` again with its frames as messages."""
    if error.frames and not error.messages:
        error.messages = _messages_from_frames(error.frames)
    raise error
