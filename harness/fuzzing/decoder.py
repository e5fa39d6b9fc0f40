"""The decoder invariants: what :func:`check_decoder` holds every input to.

The decoder fuzzer (``fuzz/fuzz_decoder.py``) calls :func:`check_decoder_input`
on each input; the tests call the very same functions without atheris. Each
raises :class:`AssertionError` with a message that says what broke.
"""

from __future__ import annotations

import json
from typing import Any

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH
from harness.errors import ContentError, ContentNotJSON, ProtocolError
from harness.fuzzing.compare import describe, same, same_error, same_messages
from harness.fuzzing.input import FLAG_ALTERNATE, FuzzInput, split
from harness.fuzzing.memo import FUZZ_MEMO, CheckMemo
from harness.fuzzing.outcome import DecodeOutcome, decode_outcome, decode_split
from harness.fuzzing.reference import Decoder, JSONViolation, check_header, loads_strict
from harness.message import MAX_HEADER_LENGTH, Message

__all__ = ["check_decoder", "check_decoder_input"]


def _check_frames(
    data: bytes, outcome: DecodeOutcome, max_content_length: int, memo: CheckMemo
) -> list[bytes]:
    """Each decoded message is exactly the next frame of ``data``, and the error is where they stop.

    The frames are walked here, from the bytes alone: the first starts at offset 0, each at its
    2-byte prefix, which gives the length of its raw header; the strict reader's reading of that
    header (:func:`~harness.strictjson.loads_strict`, then the header rules) gives the length of
    its content, and the next frame starts where that content ends. Each message's content must
    be the last bytes of its frame, and the bytes before them the raw header the prefix announces;
    the message's header must be the strict reading itself (types and key order included), so
    the decoder's fast paths can never disagree with it; the frames must end where the decoder
    stopped. The readings are the reference copy's (:mod:`~harness.fuzzing.reference`): no
    second run of the code under test. Returns each message's frame (its bytes in ``data``).
    """
    messages = outcome.messages
    stop = outcome.offset
    frames: list[bytes] = []
    pos = 0
    for i, message in enumerate(messages):
        start = pos
        if stop - start < 2:
            raise AssertionError(
                f"the decoder read {len(messages)} message(s) before it stopped at offset {stop} "
                f"({describe(outcome.error)}); message {i} would start at offset {start}, past the "
                f"last whole frame"
            )
        header_length = (data[start] << 8) | data[start + 1]
        raw = data[start + 2 : start + 2 + header_length]
        strict = memo.strict_reading(raw)  # pipelined inputs repeat headers: read each once
        if isinstance(strict, JSONViolation):
            raise AssertionError(
                f"message {i} at offset {start}: the decoder accepted a header the strict reader "
                f"rejects ({strict.kind}: {strict.reason}): {raw[:200]!r}"
            )
        if type(strict) is not dict:
            raise AssertionError(
                f"message {i} at offset {start}: the decoder accepted a header that is a "
                f"{type(strict).__name__}, not an object: {raw[:200]!r}"
            )
        try:
            length = check_header(strict)
        except ProtocolError as error:
            raise AssertionError(
                f"message {i} at offset {start}: the decoder accepted a header that breaks the header "
                f"rules ({describe(error)}): {raw[:200]!r}"
            ) from None
        end = start + 2 + header_length + length
        content = message.content
        header_end = end - len(content)
        if end > stop or header_end < start + 2 or data[header_end:end] != content:
            raise AssertionError(
                f"message {i} at offset {start}: its {len(content)} content bytes are not the last "
                f"bytes of its frame (offsets {header_end} to {end})"
            )
        if header_end != start + 2 + header_length:
            raise AssertionError(
                f"message {i} at offset {start}: its frame holds a {header_end - start - 2}-byte "
                f"header, but its prefix is {data[start : start + 2]!r}"
            )
        if not same(strict, message.header, ordered=True):
            raise AssertionError(
                f"message {i} at offset {start}: decoded header {message.header!r:.300} differs from "
                f"the strict reading {strict!r:.300}"
            )
        if len(content) > max_content_length:
            raise AssertionError(
                f"message {i} at offset {start}: {len(content)} content bytes accepted over the "
                f"limit of {max_content_length}"
            )
        frames.append(data[start:end])
        pos = end
    if pos != stop:
        raise AssertionError(
            f"the decoder read {len(messages)} message(s) before it stopped at offset {stop} "
            f"({describe(outcome.error)}); those messages' frames end at offset {pos}"
        )
    return frames


def _check_round_trip(message: Message, wire_frame: bytes, index: int, max_content_length: int) -> None:
    try:
        wire = message.encode()
    except ValueError as exc:
        size = len(json.dumps(message.header, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > MAX_HEADER_LENGTH:
            return  # a header that only fitted in a more compact JSON style
        raise AssertionError(f"message {index}: encode() failed: {exc}") from exc
    if wire == wire_frame:
        return  # already in the guide's style: decoding these bytes is what produced the message
    try:
        again = Decoder(max_content_length).feed(wire)
    except ProtocolError as error:
        raise AssertionError(
            f"message {index} re-encodes to bytes the decoder rejects: {describe(error)}; {wire[:300]!r}"
        ) from None
    if not same_messages(again, [message]):
        raise AssertionError(
            f"message {index} re-encodes to bytes that decode to {again!r:.400} instead of {message!r:.400}"
        )
    if again[0].encode() != wire:
        raise AssertionError(f"message {index}: encoding is not stable across a decode")


def _check_content(message: Message, index: int) -> None:
    """``Message.json()`` raises nothing but ``ContentError`` and, fast path or not, agrees with
    the strict reader on the decoded text (value, types and key order, or the kind of error)."""
    if not message.is_json:
        return
    got: Any
    try:
        got = message.json()
    except ContentError as error:
        got = error
    except Exception as exc:
        raise AssertionError(
            f"message {index}: Message.json() raised {type(exc).__name__}: {exc!s:.200}; only "
            f"ContentError may escape (encoding {message.content_encoding!r:.40})"
        ) from exc
    want: Any
    try:
        want = loads_strict(message.content, message.text())
    except ContentError as error:  # from text(): encoding not allowed, or bytes that do not decode
        want = error
    except JSONViolation:
        want = ContentNotJSON("")
    if isinstance(got, ProtocolError) or isinstance(want, ProtocolError):
        if type(got) is not type(want):
            got_text = describe(got) if isinstance(got, ProtocolError) else f"{got!r:.100}"
            want_text = describe(want) if isinstance(want, ProtocolError) else f"{want!r:.100}"
            raise AssertionError(
                f"message {index}: Message.json() gives {got_text}, the strict reader {want_text} "
                f"(encoding {message.content_encoding!r:.40}, content {message.content[:100]!r})"
            )
    elif not same(got, want, ordered=True):
        raise AssertionError(
            f"message {index}: Message.json() returns {got!r:.200}, the strict reader {want!r:.200} "
            f"(content {message.content[:100]!r})"
        )


def check_decoder(
    data: bytes,
    cuts: list[int],
    *,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    stepwise: bool = False,
    memo: CheckMemo | None = None,
) -> None:
    """Check every decoder invariant on ``data``; raise :class:`AssertionError` on a violation.

    - only :class:`ProtocolError` escapes the decoder (``feed``, ``close``, ``next_message``);
    - ``data`` split at ``cuts`` gives the same messages, error class, offset and reason
      as ``data`` fed whole (through ``feed()``, or ``receive_data()``/``next_message()``
      with ``stepwise``);
    - each message is the next frame of the stream, its header as the strict reader reads it,
      its content within ``max_content_length``;
    - every decoded message re-encodes to bytes that decode to an equal message;
    - ``close()`` agrees with what is left in the buffer; a failed decoder stays failed;
    - ``Message.json()`` on a ``text/json`` message raises nothing but ``ContentError``.

    ``memo`` (see :class:`CheckMemo`) carries what earlier inputs already established; by
    default this input gets a fresh one.
    """
    if memo is None:
        memo = CheckMemo()
    whole = decode_outcome(data, max_content_length)
    chunks = split(data, cuts)
    if len(chunks) > 1 or stepwise:
        # stepwise: receive_data()/next_message(), the last chunk closed before it is drained
        parts = decode_split(chunks, max_content_length, stepwise)
        if not (same_messages(whole.messages, parts.messages) and same_error(whole.error, parts.error)):
            raise AssertionError(
                f"fed whole: {whole.summary()}; split at {cuts[:20]} "
                f"({'stepwise' if stepwise else 'feed'}): {parts.summary()}"
            )
    frames = _check_frames(data, whole, max_content_length, memo)
    for i, message in enumerate(whole.messages):
        key = (frames[i], max_content_length)
        if key in memo.frames:  # the same frame decodes to the same message: check it once
            continue
        _check_round_trip(message, frames[i], i, max_content_length)
        _check_content(message, i)
        memo.add_frame(key)
    # No message of ``data`` can exceed a limit of len(data): the limit did not stop decoding.
    memo.last_stream = (data, frames, whole.messages) if max_content_length >= len(data) else None


def check_decoder_input(data: bytes) -> None:
    """The decoder fuzzer's target: decode ``data`` as a :class:`FuzzInput` and check it."""
    fuzz = FuzzInput.decode(data)
    check_decoder(
        fuzz.payload,
        fuzz.cuts,
        max_content_length=fuzz.max_content_length,
        stepwise=bool(fuzz.flags & FLAG_ALTERNATE),
        memo=FUZZ_MEMO,
    )
