"""What a :class:`~harness.decoder.Decoder` makes of a stream, with its bookkeeping checked.

:func:`decode_outcome` feeds a stream whole, :func:`decode_split` chunk by chunk;
both check, along the way, what every call must leave behind (offsets and
buffered bytes that add up, ``close()`` agreeing with the buffer, a failed
decoder that stays failed) and return a :class:`DecodeOutcome` for the
invariants to compare: the decoder's and the server's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder, DecoderState
from harness.errors import IncompleteMessage, ProtocolError
from harness.fuzzing.compare import describe, unexpected
from harness.message import Message

__all__ = ["DecodeOutcome", "decode_outcome", "decode_split"]


@dataclass
class DecodeOutcome:
    """What a decoder made of a stream: the messages, then the error that ended it (if any)."""

    messages: list[Message]
    error: ProtocolError | None
    #: Stream offset where decoding stopped (the error's offset, or the end of the stream).
    offset: int
    #: True when the error came from ``close()`` (an incomplete message at the end).
    at_close: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return f"{len(self.messages)} message(s), then {describe(self.error)}"


def _check_close(decoder: Decoder, where: str) -> ProtocolError | None:
    """Call ``close()`` and check that it agrees with what the decoder still buffers."""
    buffered, needed, offset = decoder.buffered, decoder.bytes_needed, decoder.offset
    try:
        decoder.close()
    except IncompleteMessage as error:
        if buffered == 0:
            raise AssertionError(f"{where}: close() raised {describe(error)} with nothing buffered") from None
        if (error.received, error.expected, error.offset) != (buffered, buffered + needed, offset):
            raise AssertionError(
                f"{where}: close() raised {describe(error)} (expected={error.expected}, "
                f"received={error.received}) but the decoder had {buffered} byte(s) buffered at "
                f"offset {offset} and needed {needed} more"
            ) from None
        if needed <= 0:
            raise AssertionError(
                f"{where}: close() found an incomplete message but bytes_needed was {needed}"
            ) from None
        if decoder.state is not DecoderState.FAILED or decoder.error is not error:
            raise AssertionError(
                f"{where}: after close() failed the decoder is {decoder.state}, not failed"
            ) from None
        return error
    except ProtocolError as error:
        raise AssertionError(f"{where}: close() raised {describe(error)}, not IncompleteMessage") from None
    except Exception as exc:
        raise unexpected(f"{where}: close()", exc) from exc
    if buffered:
        raise AssertionError(
            f"{where}: close() accepted the end of the stream with {buffered} byte(s) buffered"
        )
    if decoder.state is not DecoderState.CLOSED:
        raise AssertionError(f"{where}: after a clean close() the decoder is {decoder.state}, not closed")
    return None


def _check_failed_state(decoder: Decoder, error: ProtocolError, where: str) -> None:
    """A failed decoder raises the same error again (a copy with no messages) on every call."""
    if decoder.error is not error or decoder.state is not DecoderState.FAILED:
        raise AssertionError(f"{where}: after {describe(error)} the decoder is {decoder.state}")
    for call in (lambda: decoder.feed(b"\x00"), decoder.close):
        try:
            call()
        except ProtocolError as again:
            if (
                type(again) is not type(error)
                or (again.offset, again.reason) != (error.offset, error.reason)
                or again.messages
                or decoder.error is not error
            ):
                raise AssertionError(
                    f"{where}: a failed decoder raised {describe(again)} with {len(again.messages)} "
                    f"message(s) instead of {describe(error)} again"
                ) from None
        except Exception as exc:
            raise unexpected(f"{where}: a failed decoder", exc) from exc
        else:
            raise AssertionError(f"{where}: a failed decoder accepted another call")


def decode_outcome(data: bytes, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> DecodeOutcome:
    """Decode ``data`` in one ``feed()`` then ``close()``, checking the decoder's bookkeeping."""
    decoder = Decoder(max_content_length)
    try:
        messages = decoder.feed(data)
    except ProtocolError as error:
        if error.offset is None:
            raise AssertionError(f"whole feed: {describe(error)} has no stream offset") from None
        messages = list(error.messages)  # the failed-state check below resets error.messages
        _check_failed_state(decoder, error, "whole feed")
        return DecodeOutcome(messages, error, error.offset)
    except Exception as exc:
        raise unexpected("Decoder.feed()", exc) from exc
    if decoder.offset + decoder.buffered != len(data):
        raise AssertionError(
            f"whole feed: offset {decoder.offset} + buffered {decoder.buffered} != {len(data)} bytes fed"
        )
    offset = decoder.offset
    at_close = _check_close(decoder, "whole feed")
    if at_close is not None:
        _check_failed_state(decoder, at_close, "whole feed")
    return DecodeOutcome(messages, at_close, offset, at_close=at_close is not None)


def decode_split(chunks: list[bytes], max_content_length: int, stepwise: bool) -> DecodeOutcome:
    """Decode ``chunks`` one by one, checking the bookkeeping after each.

    With ``stepwise`` the h11-style API is used, and the last chunk is not drained
    before ``close()``: the messages it completes must come out of ``close()`` (on its
    error's ``messages``) or from ``next_message()`` after it.
    """
    how = "receive_data()/next_message()" if stepwise else "feed()"
    where = f"split {how} into {len(chunks)} chunk(s)"
    decoder = Decoder(max_content_length)
    messages: list[Message] = []
    fed = 0
    last = len(chunks) - 1
    for i, chunk in enumerate(chunks):
        try:
            if stepwise:
                decoder.receive_data(chunk)
                while i < last and (message := decoder.next_message()) is not None:
                    messages.append(message)
            else:
                messages.extend(decoder.feed(chunk))
        except ProtocolError as error:
            if stepwise and error.messages:
                raise AssertionError(f"{where}: next_message() raised an error carrying messages") from None
            messages.extend(error.messages)  # before the failed-state check resets them
            _check_failed_state(decoder, error, where)
            if error.offset is None:
                raise AssertionError(f"{where}: {describe(error)} has no stream offset") from None
            return DecodeOutcome(messages, error, error.offset, extra={"chunk": i})
        except Exception as exc:
            raise unexpected(f"{where}: chunk {i}", exc) from exc
        fed += len(chunk)
        if decoder.offset + decoder.buffered != fed:
            raise AssertionError(
                f"{where}: after chunk {i}, offset {decoder.offset} + buffered {decoder.buffered} "
                f"!= {fed} bytes fed"
            )
    if stepwise:
        return _close_undrained(decoder, messages, where)
    offset = decoder.offset
    at_close = _check_close(decoder, where)
    if at_close is not None:
        _check_failed_state(decoder, at_close, where)
    return DecodeOutcome(messages, at_close, offset, at_close=at_close is not None)


def _close_undrained(decoder: Decoder, messages: list[Message], where: str) -> DecodeOutcome:
    """``close()`` with whole messages possibly still buffered, then drain ``next_message()``."""
    try:
        decoder.close()
    except ProtocolError as error:
        messages.extend(error.messages)
        _check_failed_state(decoder, error, f"{where}, close() before draining")
        if error.offset is None:
            raise AssertionError(f"{where}: {describe(error)} has no stream offset") from None
        return DecodeOutcome(messages, error, error.offset, at_close=True)
    except Exception as exc:
        raise unexpected(f"{where}: close() before draining", exc) from exc
    try:
        while (message := decoder.next_message()) is not None:
            messages.append(message)
    except Exception as exc:
        raise unexpected(f"{where}: next_message() after a clean close()", exc) from exc
    if decoder.state is not DecoderState.CLOSED or decoder.buffered:
        raise AssertionError(
            f"{where}: after a clean close() and draining, the decoder is {decoder.state} "
            f"with {decoder.buffered} byte(s) buffered"
        )
    return DecodeOutcome(messages, None, decoder.offset)
