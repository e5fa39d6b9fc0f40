"""What the decoder invariants derived from bytes alone, kept across the inputs of one process."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.fuzzing.reference import JSONViolation, loads_strict
from harness.message import Message

__all__ = ["FUZZ_MEMO", "CheckMemo"]


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
    two checks must not share one (:func:`~harness.fuzzing.check_decoder` uses none unless
    given one).

    ``last_stream``: the last stream that passed every check with a content limit no message
    of it can exceed, split into ``(frames, messages)`` where decoding stopped. libFuzzer
    mutates the input it has just run, so the structure-aware mutator takes its parse from here
    (the same frames, the same messages) instead of reading it again.
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


#: The memo of :func:`~harness.fuzzing.check_decoder_input` (the fuzzer's target; the
#: mutator reads ``last_stream``).
FUZZ_MEMO = CheckMemo()
