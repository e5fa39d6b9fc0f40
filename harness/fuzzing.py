"""Fuzzing invariants shared by the atheris fuzzers and the test suite.

A fuzz input is a small chunking prefix followed by the byte stream itself
(see :class:`FuzzInput`), so libFuzzer chooses both the bytes and the points
where they are split. :func:`check_decoder` and :func:`check_server_connection`
run one input and raise :class:`AssertionError` with a clear message when an
invariant breaks; the fuzzers (``fuzz/fuzz_*.py``) call them through
:func:`check_decoder_input` / :func:`check_server_input`, the regression tests
call the very same functions without atheris.

:func:`seed_corpus` builds the committed seed corpus from the codec and the
Hypothesis strategies (``fuzz/make_seeds.py`` writes it to ``fuzz/seeds/``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from harness.decoder import DEFAULT_MAX_CONTENT_LENGTH, Decoder, DecoderState
from harness.errors import ContentError, ContentNotJSON, IncompleteMessage, ProtocolError
from harness.message import MAX_HEADER_LENGTH, TEXT_ENCODINGS, Message
from harness.strictjson import JSONViolation, loads_strict
from harness.vectors import GUIDE_EXCHANGES

__all__ = [
    "DRAWN_SEED_PREFIXES",
    "FLAG_ALTERNATE",
    "FLAG_CYCLE",
    "FLAG_SMALL_LIMITS",
    "FUZZ_MEMO",
    "MAX_CUTS",
    "MAX_DELTAS",
    "SMALL_MAX_CONTENT_LENGTH",
    "SMALL_MAX_PENDING_OUTPUT",
    "CheckMemo",
    "DecodeOutcome",
    "FuzzInput",
    "check_decoder",
    "check_decoder_input",
    "check_server_connection",
    "check_server_input",
    "decode_outcome",
    "seed_corpus",
    "split",
]

#: Low bits of the first input byte: how many chunking deltas follow it.
MAX_DELTAS = 0x1F
#: Use small limits (content-length limit, server output bound) so they are reachable.
FLAG_SMALL_LIMITS = 0x20
#: Decoder: drive the split run through ``receive_data()``/``next_message()`` instead of
#: ``feed()``. Server: the peer never sends EOF (the connection stays open).
FLAG_ALTERNATE = 0x40
#: Repeat the deltas until the stream ends (``b"\x01"`` with this flag: one byte at a time).
FLAG_CYCLE = 0x80

#: At most this many cuts per input: feeding costs time per chunk, and one byte at a time
#: over the first 32 bytes already crosses the prefix and into the header of a message.
MAX_CUTS = 32
SMALL_MAX_CONTENT_LENGTH = 100
SMALL_MAX_PENDING_OUTPUT = 128


@dataclass(frozen=True)
class FuzzInput:
    """One fuzz input: ``flags`` (first byte), chunking ``deltas``, then the ``payload`` stream.

    Byte 0 holds the number of delta bytes in its low 5 bits plus the ``FLAG_*`` bits;
    each delta byte moves the next cut that many bytes further (0: an empty chunk).
    Every byte string is a valid input; :meth:`encode` is the exact inverse of
    :meth:`decode` for inputs it produced.
    """

    payload: bytes
    deltas: bytes = b""
    flags: int = 0

    def __post_init__(self) -> None:
        if len(self.deltas) > MAX_DELTAS:
            raise ValueError(f"at most {MAX_DELTAS} deltas, not {len(self.deltas)}")
        if not 0 <= self.flags <= 0xFF or self.flags & MAX_DELTAS:
            raise ValueError(f"flags must be a combination of the FLAG_* bits, not {self.flags:#x}")

    @classmethod
    def decode(cls, data: bytes) -> FuzzInput:
        if not data:
            return cls(b"")
        count = data[0] & MAX_DELTAS
        return cls(data[1 + count :], data[1 : 1 + count], data[0] & ~MAX_DELTAS & 0xFF)

    def encode(self) -> bytes:
        return bytes([self.flags | len(self.deltas)]) + self.deltas + self.payload

    @property
    def cuts(self) -> list[int]:
        """The split points in ``payload``, ascending (repeats mean empty chunks); at most ``MAX_CUTS``."""
        n = len(self.payload)
        deltas = self.deltas
        if not deltas:
            return []
        cycle = bool(self.flags & FLAG_CYCLE) and any(deltas)
        cuts: list[int] = []
        pos = 0
        while True:
            for delta in deltas:
                pos += delta
                if pos >= n or len(cuts) == MAX_CUTS:
                    return cuts
                cuts.append(pos)
            if not cycle:
                return cuts

    @property
    def max_content_length(self) -> int:
        return SMALL_MAX_CONTENT_LENGTH if self.flags & FLAG_SMALL_LIMITS else DEFAULT_MAX_CONTENT_LENGTH


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at ``cuts`` (clamped to ``[0, len(data)]`` and sorted)."""
    n = len(data)
    points = sorted(min(max(c, 0), n) for c in cuts)
    return [data[a:b] for a, b in zip([0, *points], [*points, n], strict=True)]


# -- comparing decoded values strictly ----------------------------------------


_dumps_ordered = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
_dumps_sorted = json.JSONEncoder(ensure_ascii=False, check_circular=False, sort_keys=True).encode


def _same(a: Any, b: Any, ordered: bool = False) -> bool:
    """Equal and of the same types all the way down (``1 == 1.0 == True`` is not enough).

    The JSON text tells the types apart where ``==`` does not (``1``/``1.0``/``true``,
    ``0.0``/``-0.0``); with ``ordered``, object keys must also come in the same order.
    """
    if a != b:
        return False
    dumps = _dumps_ordered if ordered else _dumps_sorted
    return bool(dumps(a) == dumps(b))


def _same_messages(a: list[Message], b: list[Message]) -> bool:
    return len(a) == len(b) and all(
        x.content == y.content and _same(x.header, y.header) for x, y in zip(a, b, strict=True)
    )


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    offset = getattr(error, "offset", None)
    return f"{type(error).__name__}({str(getattr(error, 'reason', error))!r:.200}, offset={offset})"


# -- the decoder ----------------------------------------------------------------


@dataclass
class CheckMemo:
    """What the decoder checks derived from bytes alone, kept across the inputs of one process.

    Both are pure functions of their key, so remembering them drops no check: every input is
    still decoded whole and split and every message compared with the strict reading of its
    frame; only work whose result is already known is skipped. libFuzzer mutates a few hundred
    corpus entries over and over, so most frames and headers of an input were seen before.
    Bounded: a full table is emptied.

    - ``strict``: raw header -> :func:`loads_strict`'s reading of it, or its ``JSONViolation``
      (the reference the decoder's header is compared with);
    - ``frames``: ``(frame, max_content_length)`` whose message passed the round-trip and
      ``Message.json()`` checks. A frame's message is determined by the frame: its header is
      checked equal (types and key order included) to the strict reading of the frame's raw
      header and its content equal to the frame's content bytes before it is looked up here.

    Only for a fixed code under test (a fuzzing process): a test that patches the codec between
    two checks must not share one (:func:`check_decoder` uses none unless given one).

    ``last_stream``: the last stream that passed every check with a content limit no message
    of it can exceed, split into ``(frames, messages)`` where decoding stopped. libFuzzer
    mutates the input it has just run, so the structure-aware mutator takes its parse from here
    (the same decoder, the same messages) instead of decoding it again.
    """

    limit: int = 4096
    strict: dict[bytes, Any] = field(default_factory=dict)
    frames: set[tuple[bytes, int]] = field(default_factory=set)
    last_stream: tuple[bytes, list[bytes], list[Message]] | None = None

    def strict_reading(self, raw: bytes) -> Any:
        """``loads_strict(raw)``, or the ``JSONViolation`` it raises (returned, not raised)."""
        try:
            return self.strict[raw]
        except KeyError:
            pass
        reading: Any
        try:
            reading = loads_strict(raw)
        except JSONViolation as exc:
            reading = exc
        if len(self.strict) >= self.limit:
            self.strict.clear()
        self.strict[raw] = reading
        return reading

    def add_frame(self, key: tuple[bytes, int]) -> None:
        if len(self.frames) >= self.limit:
            self.frames.clear()
        self.frames.add(key)


#: The memo of :func:`check_decoder_input` (the fuzzer's target; the mutator reads ``last_stream``).
FUZZ_MEMO = CheckMemo()


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
        return f"{len(self.messages)} message(s), then {_describe(self.error)}"


def _unexpected(where: str, exc: BaseException) -> AssertionError:
    return AssertionError(
        f"{where} raised {type(exc).__name__}: {exc!s:.300}; only ProtocolError may escape the decoder"
    )


def _check_close(decoder: Decoder, where: str) -> ProtocolError | None:
    """Call ``close()`` and check that it agrees with what the decoder still buffers."""
    buffered, needed, offset = decoder.buffered, decoder.bytes_needed, decoder.offset
    try:
        decoder.close()
    except IncompleteMessage as error:
        if buffered == 0:
            raise AssertionError(
                f"{where}: close() raised {_describe(error)} with nothing buffered"
            ) from None
        if (error.received, error.expected, error.offset) != (buffered, buffered + needed, offset):
            raise AssertionError(
                f"{where}: close() raised {_describe(error)} (expected={error.expected}, "
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
        raise AssertionError(f"{where}: close() raised {_describe(error)}, not IncompleteMessage") from None
    except Exception as exc:
        raise _unexpected(f"{where}: close()", exc) from exc
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
        raise AssertionError(f"{where}: after {_describe(error)} the decoder is {decoder.state}")
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
                    f"{where}: a failed decoder raised {_describe(again)} with {len(again.messages)} "
                    f"message(s) instead of {_describe(error)} again"
                ) from None
        except Exception as exc:
            raise _unexpected(f"{where}: a failed decoder", exc) from exc
        else:
            raise AssertionError(f"{where}: a failed decoder accepted another call")


def decode_outcome(data: bytes, max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH) -> DecodeOutcome:
    """Decode ``data`` in one ``feed()`` then ``close()``, checking the decoder's bookkeeping."""
    decoder = Decoder(max_content_length)
    try:
        messages = decoder.feed(data)
    except ProtocolError as error:
        if error.offset is None:
            raise AssertionError(f"whole feed: {_describe(error)} has no stream offset") from None
        messages = list(error.messages)  # the failed-state check below resets error.messages
        _check_failed_state(decoder, error, "whole feed")
        return DecodeOutcome(messages, error, error.offset)
    except Exception as exc:
        raise _unexpected("Decoder.feed()", exc) from exc
    if decoder.offset + decoder.buffered != len(data):
        raise AssertionError(
            f"whole feed: offset {decoder.offset} + buffered {decoder.buffered} != {len(data)} bytes fed"
        )
    offset = decoder.offset
    at_close = _check_close(decoder, "whole feed")
    if at_close is not None:
        _check_failed_state(decoder, at_close, "whole feed")
    return DecodeOutcome(messages, at_close, offset, at_close=at_close is not None)


def _decode_split(chunks: list[bytes], max_content_length: int, stepwise: bool) -> DecodeOutcome:
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
                raise AssertionError(f"{where}: {_describe(error)} has no stream offset") from None
            return DecodeOutcome(messages, error, error.offset, extra={"chunk": i})
        except Exception as exc:
            raise _unexpected(f"{where}: chunk {i}", exc) from exc
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
            raise AssertionError(f"{where}: {_describe(error)} has no stream offset") from None
        return DecodeOutcome(messages, error, error.offset, at_close=True)
    except Exception as exc:
        raise _unexpected(f"{where}: close() before draining", exc) from exc
    try:
        while (message := decoder.next_message()) is not None:
            messages.append(message)
    except Exception as exc:
        raise _unexpected(f"{where}: next_message() after a clean close()", exc) from exc
    if decoder.state is not DecoderState.CLOSED or decoder.buffered:
        raise AssertionError(
            f"{where}: after a clean close() and draining, the decoder is {decoder.state} "
            f"with {decoder.buffered} byte(s) buffered"
        )
    return DecodeOutcome(messages, None, decoder.offset)


def _same_error(a: ProtocolError | None, b: ProtocolError | None) -> bool:
    if a is None or b is None:
        return a is b
    if (type(a), a.offset, a.reason) != (type(b), b.offset, b.reason):
        return False
    if isinstance(a, IncompleteMessage) and isinstance(b, IncompleteMessage):
        return (a.expected, a.received) == (b.expected, b.received)
    return True


def _check_frames(
    data: bytes, outcome: DecodeOutcome, max_content_length: int, memo: CheckMemo
) -> list[bytes]:
    """Each decoded message is exactly the next frame of ``data``, and the error is where they stop.

    The header of every frame is also read by the definitive strict reader: the
    decoder's fast path must return the very same value (types and key order
    included). Returns each message's frame (its bytes in ``data``).
    """
    frames: list[bytes] = []
    pos = 0
    for i, message in enumerate(outcome.messages):
        header_length = int.from_bytes(data[pos : pos + 2], "big")
        raw = data[pos + 2 : pos + 2 + header_length]
        start = pos + 2 + header_length
        end = start + len(message.content)
        if data[start:end] != message.content:
            raise AssertionError(f"message {i}: its content is not the bytes at offset {start}")
        strict = memo.strict_reading(raw)  # pipelined inputs repeat headers: read each once
        if isinstance(strict, JSONViolation):
            raise AssertionError(
                f"message {i} at offset {pos}: the decoder accepted a header the strict reader "
                f"rejects ({strict.kind}: {strict.reason}): {raw[:200]!r}"
            )
        if not _same(strict, message.header, ordered=True):
            raise AssertionError(
                f"message {i} at offset {pos}: decoded header {message.header!r:.300} differs from "
                f"the strict reading {strict!r:.300}"
            )
        if len(message.content) > max_content_length:
            raise AssertionError(
                f"message {i} at offset {pos}: {len(message.content)} content bytes accepted over the "
                f"limit of {max_content_length}"
            )
        frames.append(data[pos:end])
        pos = end
    if pos != outcome.offset:
        raise AssertionError(
            f"the {len(outcome.messages)} message(s) end at offset {pos} but decoding stopped at "
            f"{outcome.offset} ({_describe(outcome.error)})"
        )
    return frames


def _check_round_trip(message: Message, frame: bytes, index: int, max_content_length: int) -> None:
    try:
        wire = message.encode()
    except ValueError as exc:
        size = len(json.dumps(message.header, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > MAX_HEADER_LENGTH:
            return  # a header that only fitted in a more compact JSON style
        raise AssertionError(f"message {index}: encode() failed: {exc}") from exc
    if wire == frame:
        return  # already in the guide's style: decoding these bytes is what produced the message
    try:
        again = Decoder(max_content_length).feed(wire)
    except ProtocolError as error:
        raise AssertionError(
            f"message {index} re-encodes to bytes the decoder rejects: {_describe(error)}; {wire[:300]!r}"
        ) from None
    if not _same_messages(again, [message]):
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
            got_text = _describe(got) if isinstance(got, ProtocolError) else f"{got!r:.100}"
            want_text = _describe(want) if isinstance(want, ProtocolError) else f"{want!r:.100}"
            raise AssertionError(
                f"message {index}: Message.json() gives {got_text}, the strict reader {want_text} "
                f"(encoding {message.content_encoding!r:.40}, content {message.content[:100]!r})"
            )
    elif not _same(got, want, ordered=True):
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
        parts = _decode_split(chunks, max_content_length, stepwise)
        if not (_same_messages(whole.messages, parts.messages) and _same_error(whole.error, parts.error)):
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


# -- the server's connection handling --------------------------------------------


def _expected_response(app: Callable[[Message], Message], request: Message) -> bytes:
    from harness.message import error_response

    try:
        return app(request).encode()
    except ContentError as error:
        return error_response(error).encode()
    except Exception as exc:  # the server would answer internal-error: the application is broken
        raise AssertionError(
            f"the application raised {type(exc).__name__}: {exc!s:.200} on {request!r:.300}"
        ) from exc


def check_server_connection(
    chunks: list[bytes],
    *,
    eof: bool = True,
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH,
    max_pending_output: int | None = None,
) -> None:
    """Feed ``chunks`` to a :class:`~harness.connection.ServerConnection`; check its invariants.

    - no call raises;
    - everything it emits decodes as valid messages, and is exactly the search
      application's response to each request the decoder finds in the input, in order
      (an error message for bad content), then the error message of the protocol
      error that ended the stream, if any;
    - it ends closed (with EOF, or on an error) or open and waiting (no EOF, no error);
    - no call returns more than ``max_pending_output`` bytes plus one response, the
      backlog drains in a bounded number of calls, and what it buffers afterwards is
      only the unfinished message at the end of the input.
    """
    from harness.apps import search_app
    from harness.connection import DEFAULT_MAX_PENDING_OUTPUT, ServerConnection
    from harness.message import error_response

    limit = DEFAULT_MAX_PENDING_OUTPUT if max_pending_output is None else max_pending_output
    data = b"".join(chunks)
    reference = decode_outcome(data, max_content_length)
    if reference.at_close and not eof:
        reference = DecodeOutcome(reference.messages, None, reference.offset)
    conn = ServerConnection(search_app, max_content_length=max_content_length, max_pending_output=limit)

    output: list[bytes] = []
    out_decoder = Decoder(max_content_length=1 << 30)
    responses: list[Message] = []

    def take(out: bytes, what: str) -> None:
        if not isinstance(out, bytes):
            raise AssertionError(f"{what} returned {type(out).__name__}, not bytes")
        try:
            emitted = out_decoder.feed(out)
        except ProtocolError as error:
            raise AssertionError(
                f"{what}: the server emitted bytes that do not decode: {_describe(error)}"
            ) from None
        if out_decoder.buffered:
            raise AssertionError(
                f"{what} returned part of a message ({out_decoder.buffered} bytes left over)"
            )
        # The bound: the call stops answering once it has ``limit`` bytes, so all but its last
        # response fit under it; the error message that closes a connection may follow.
        sizes = [len(m.encode()) for m in emitted]
        if conn.error is not None and sizes:
            sizes.pop()
        if len(sizes) > 1 and sum(sizes[:-1]) >= limit:
            raise AssertionError(
                f"{what} returned {len(out)} bytes in {len(emitted)} message(s): "
                f"over the output bound {limit}"
            )
        responses.extend(emitted)
        output.append(out)

    def call(what: str, fn: Callable[[], bytes]) -> None:
        try:
            out = fn()
        except Exception as exc:
            raise AssertionError(
                f"{what} raised {type(exc).__name__}: {exc!s:.300} after {len(responses)} response(s)"
            ) from exc
        take(out, what)
        drains = 0
        while conn.backlog:
            drains += 1
            if drains > len(reference.messages) + 1:
                raise AssertionError(f"{what}: the backlog did not drain after {drains} calls")
            try:
                out = conn.answer_backlog()
            except Exception as exc:
                raise AssertionError(f"receive_data(b'') raised {type(exc).__name__}: {exc!s:.300}") from exc
            if not out and conn.backlog:
                raise AssertionError(f"{what}: a backlog call answered nothing")
            take(out, "receive_data(b'') (draining the backlog)")

    for i, chunk in enumerate(chunks):
        call(f"receive_data(chunk {i} of {len(chunks)})", lambda c=chunk: conn.receive_data(c))  # type: ignore[misc]
        if conn.closed:
            break
    if eof and not conn.closed:
        call("receive_eof()", conn.receive_eof)

    # -- what it must have said -------------------------------------------------
    expected = [_expected_response(search_app, r) for r in reference.messages]
    if reference.error is not None:
        expected.append(error_response(reference.error).encode())
    got, want = b"".join(output), b"".join(expected)
    if got != want:
        differ = next(
            (i for i, (x, y) in enumerate(zip(got, want, strict=False)) if x != y), min(len(got), len(want))
        )
        raise AssertionError(
            f"the server answered {len(responses)} message(s) ({len(got)} bytes); the input holds "
            f"{reference.summary()}, which calls for {len(expected)} response(s) ({len(want)} bytes); "
            f"they differ from byte {differ}: {got[differ : differ + 80]!r} vs {want[differ : differ + 80]!r}"
        )
    if not _same_error(conn.error, reference.error):
        raise AssertionError(
            f"the connection's error is {_describe(conn.error)}, expected {_describe(reference.error)}"
        )

    # -- how it must have ended ---------------------------------------------------
    if reference.error is not None or eof:
        if not conn.closed:
            raise AssertionError(
                f"the connection is still open after {_describe(reference.error)} (eof={eof})"
            )
        after = conn.receive_data(b"more bytes")
        if after:
            raise AssertionError(f"a closed connection answered {len(after)} more byte(s)")
    else:
        if conn.closed:
            raise AssertionError("the connection closed without EOF or error")
        left = len(data) - reference.offset
        if conn.buffered != left:
            raise AssertionError(
                f"the connection buffers {conn.buffered} byte(s); the input leaves {left} unfinished"
            )
        if left > 2 + MAX_HEADER_LENGTH + max_content_length:
            raise AssertionError(f"{left} bytes of one unfinished message were buffered")
    if conn.backlog:
        raise AssertionError("the connection ended with a backlog")


def check_server_input(data: bytes) -> None:
    """The server fuzzer's target: decode ``data`` as a :class:`FuzzInput` and check it."""
    fuzz = FuzzInput.decode(data)
    small = bool(fuzz.flags & FLAG_SMALL_LIMITS)
    check_server_connection(
        split(fuzz.payload, fuzz.cuts),
        eof=not fuzz.flags & FLAG_ALTERNATE,
        max_content_length=fuzz.max_content_length,
        max_pending_output=SMALL_MAX_PENDING_OUTPUT if small else None,
    )


# -- the seed corpus --------------------------------------------------------------

#: The wire vectors of docs/PROTOCOL.md#wire-vectors (the guide's own run), by seed name.
WIRE_VECTORS: dict[str, bytes] = {
    f"vector-{side}-{name}": exchange[index]
    for name, exchange in GUIDE_EXCHANGES.items()
    for index, side in enumerate(("request", "response"))
}


def _valid_seed_messages() -> Iterator[tuple[str, bytes]]:
    for query in ("morpheus", "ring", "\U0001f436", "needle", ""):
        yield (
            f"search-{query.encode().hex() if not query.isascii() else query or 'empty'}",
            (Message.from_json({"action": "search", "value": query}, byteorder="big").encode()),
        )
    yield "action-fetch", Message.from_json({"action": "fetch", "value": "x"}).encode()
    yield "json-not-object", Message.from_json([1, "two", None, True, 2.5, {"k": []}]).encode()
    for encoding in sorted(TEXT_ENCODINGS):
        value = {"action": "search", "value": "caf\u00e9" if encoding != "ascii" else "cafe"}
        yield f"encoding-{encoding}", Message.from_json(value, encoding=encoding).encode()
    yield "binary-empty", Message.from_bytes(b"").encode()
    yield (
        "binary-octets",
        Message.from_bytes(bytes(range(256)), content_type="application/octet-stream").encode(),
    )
    yield (
        "extension-headers",
        Message.from_json(
            {"action": "search", "value": "ring"},
            extra_headers={"x-id": 7, "x-trace": ["a", {"b": None}], "x-ratio": 0.5, "x-flag": False},
        ).encode(),
    )
    # More distinct headers than a decoder remembers per stream (its header memo holds 32).
    yield (
        "many-distinct-headers",
        b"".join(Message.from_bytes(b"", content_type=f"t{i}", encoding="b").encode() for i in range(34)),
    )
    yield (
        "compact-header",
        (
            b'\x00\x5a{"content-length":2,"byteorder":"big","content-encoding":"utf-8","content-type":"text/json"}{}'
        ),
    )


def _hypothesis_examples(strategy: Any, count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy``, the same ones on every run (Hypothesis is derandomized)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    drawn: list[Any] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        if len(drawn) < count:
            drawn.append(value)

    collect()
    return drawn


#: Seeds drawn from Hypothesis strategies: their bytes change with the Hypothesis version (and
#: with string constants Hypothesis picks up from the source); every other seed is fixed.
DRAWN_SEED_PREFIXES = ("violation-", "pair-then-", "bad-content-", "message-", "stream-")


def seed_corpus() -> dict[str, bytes]:
    """The seed corpus: fuzz inputs (see :class:`FuzzInput`) by file name.

    The wire vectors, every kind of valid message, pipelined pairs, each violation
    class of docs/PROTOCOL.md (the rows of :data:`harness.violations.VIOLATIONS`, drawn with
    their generators through :func:`harness.strategies.malformed_messages` and
    :func:`~harness.strategies.bad_content_messages`), with a few chunkings.
    Deterministic for a given Hypothesis version.
    """
    from harness import strategies
    from harness.violations import stream_violations

    streams: dict[str, bytes] = dict(WIRE_VECTORS)
    streams.update(_valid_seed_messages())
    singles = list(streams.items())
    # pipelined pairs: request then request, and valid then broken
    request = WIRE_VECTORS["vector-request-morpheus"]
    for name, data in singles[:: max(1, len(singles) // 8)]:
        streams[f"pair-{name}"] = request + data
    for kind in (row.code for row in stream_violations()):
        for i, bad in enumerate(_hypothesis_examples(strategies.malformed_messages(kind), 4, seed=len(kind))):
            streams[f"violation-{kind}-{i}"] = bad.data
            if i == 0:
                streams[f"pair-then-{kind}"] = request + bad.data
    for i, (message, _error) in enumerate(_hypothesis_examples(strategies.bad_content_messages(), 6, seed=7)):
        streams[f"bad-content-{i}"] = message.encode()
    for i, message in enumerate(_hypothesis_examples(strategies.messages(max_content_size=512), 12, seed=11)):
        try:
            streams[f"message-{i}"] = message.encode()
        except ValueError:  # pragma: no cover - headers drawn here are small
            continue
    from hypothesis import strategies as st

    pipelines = st.lists(strategies.wire_messages(), min_size=2, max_size=3).map(
        lambda pairs: b"".join(raw for _, raw in pairs)
    )
    for i, stream in enumerate(_hypothesis_examples(pipelines.filter(lambda b: len(b) <= 4096), 6, seed=13)):
        streams[f"stream-{i}"] = stream

    corpus: dict[str, bytes] = {}
    for name, data in streams.items():
        corpus[name] = FuzzInput(data).encode()
    # A few chunkings of the wire vectors: one byte at a time, across the prefix, the header and the content.
    request_bytes = WIRE_VECTORS["vector-request-morpheus"]
    corpus["chunked-bytewise"] = FuzzInput(request_bytes + request_bytes, b"\x01", FLAG_CYCLE).encode()
    corpus["chunked-prefix-header-content"] = FuzzInput(request_bytes, bytes([1, 1, 50, 55, 0, 10])).encode()
    corpus["chunked-stepwise"] = FuzzInput(
        request_bytes * 3, bytes([7, 0, 101]), FLAG_CYCLE | FLAG_ALTERNATE
    ).encode()
    corpus["small-limits-binary"] = FuzzInput(
        WIRE_VECTORS["vector-response-binary"] * 2, b"", FLAG_SMALL_LIMITS
    ).encode()
    corpus["small-limits-pipelined"] = FuzzInput(
        request_bytes * 6, b"\x40", FLAG_SMALL_LIMITS | FLAG_CYCLE
    ).encode()
    corpus["open-connection-partial"] = FuzzInput(
        request_bytes + request_bytes[:60], b"\x05", FLAG_ALTERNATE
    ).encode()
    return corpus
