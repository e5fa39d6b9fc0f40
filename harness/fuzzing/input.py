"""The fuzz input format: a chunking header, cut deltas, then the byte stream.

libFuzzer chooses the bytes of a stream and, through this layout, the points
where they are split, so every byte string is one input (:class:`FuzzInput`).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.frames import DEFAULT_MAX_CONTENT_LENGTH

__all__ = [
    "FLAG_ALTERNATE",
    "FLAG_CYCLE",
    "FLAG_SMALL_LIMITS",
    "MAX_CUTS",
    "MAX_DELTAS",
    "SMALL_MAX_CONTENT_LENGTH",
    "SMALL_MAX_PENDING_OUTPUT",
    "FuzzInput",
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
