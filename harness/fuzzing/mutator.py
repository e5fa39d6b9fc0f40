"""A structure-aware mutator for the lpjson fuzzers (an atheris ``custom_mutator``).

libFuzzer's byte mutations rarely keep a length-prefixed stream in sync: flip a
digit of ``content-length`` and every later message is garbage. This mutator
splits the input into messages with the project's own frame layer
(:class:`~harness.frames.FrameReader`, never a second parser: message
boundaries are the frames' offsets; the uninstrumented copy of
:mod:`~harness.fuzzing.reference`, so that mutating costs no coverage tracing
and counts as no coverage) and mutates at the protocol level: header
keys, value types and values, ``content-length`` off by one and far off,
extension headers, encodings, content, JSON styles and raw-header defects, the
2-byte prefix, and whole messages (drop, duplicate, swap, splice, insert a
known message). Now and then, and whenever a mutation cannot apply, it falls
back to byte mutation (``atheris.Mutate`` inside a fuzzer, which also uses
libFuzzer's dictionary).

Inputs keep the :class:`~harness.fuzzing.input.FuzzInput` layout (chunking
prefix, then the stream); the chunking prefix is mutated too.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from harness.errors import ProtocolError
from harness.fuzzing.input import (
    FLAG_ALTERNATE,
    FLAG_CYCLE,
    FLAG_SMALL_LIMITS,
    MAX_DELTAS,
    SMALL_MAX_CONTENT_LENGTH,
    FuzzInput,
)
from harness.fuzzing.memo import FUZZ_MEMO
from harness.fuzzing.reference import FrameReader, prefix
from harness.fuzzing.seeds import WIRE_VECTORS
from harness.header import MAX_HEADER_LENGTH, REQUIRED_KEYS
from harness.message import TEXT_ENCODINGS

__all__ = ["ByteMutator", "StructureMutator", "WireMessage", "parse_frames", "simple_byte_mutate"]

log = logging.getLogger(__name__)

#: ``(data, max_size) -> mutated data``, e.g. ``atheris.Mutate``.
ByteMutator = Callable[[bytes, int], bytes]

_PARSE_LIMIT = 1 << 62  # parse whatever the header announces; the target applies the real limit

_BYTEORDERS = ["little", "big", "LITTLE", "middle", ""]
_CONTENT_TYPES = [
    "text/json",
    "text/json",
    "binary/custom-client-binary-type",
    "binary/custom-server-binary-type",
    "application/octet-stream",
    "TEXT/JSON",
    "text/json ",
    "",
]
_ENCODINGS = [
    *sorted(TEXT_ENCODINGS),
    "utf-8",
    "binary",
    "UTF-8",
    "Utf-16",
    "utf-7",
    "rot13",
    "base64",
    "idna",
    "",
]
_EXTENSION_KEYS = [
    "x-id",
    "x-trace",
    "action",
    "value",
    "",
    "content_length",
    "Content-Length",
    "\u00e9",
    "\U0001f436",
]
_VALUES: list[Any] = [
    0,
    1,
    -1,
    10,
    41,
    2**31,
    2**63,
    2**64 + 1,
    -(2**63),
    10**30,
    0.0,
    -0.0,
    1.5,
    1e308,
    5e-324,
    float("nan"),
    float("inf"),
    True,
    False,
    None,
    "",
    "10",
    "little",
    "big",
    "utf-8",
    "text/json",
    "\u00e9\U0001f436",
    "\x00",
    [],
    {},
    [1, "a", None],
    {"k": {"k": [0.5]}},
]
_QUERIES = ["morpheus", "ring", "\U0001f436", "needle", "", "search", "x" * 100]
_JSON_CONTENT: list[Any] = [
    {"action": "search", "value": "morpheus"},
    {"action": "search", "value": "\U0001f436"},
    {"action": "fetch", "value": "ring"},
    {"action": "search", "value": 7},
    {"action": "search"},
    {"result": "Follow the white rabbit. \U0001f430"},
    {"error": "header-not-json", "detail": "x"},
    [],
    [[[]]],
    "search",
    0,
    -0.0,
    1e300,
    None,
    True,
    {"": {"": [1, 2.5, "\u00e9"]}},
]
_RAW_VALUES = ["NaN", "Infinity", "-Infinity", "1e400", "-1E999", "01", "1.", ".5", "tru", "'x'", '"\\ud800"']


def simple_byte_mutate(rng: random.Random) -> ByteMutator:
    """A small byte mutator for use outside a fuzzer (tests): flip, insert, erase, copy."""

    def mutate(data: bytes, max_size: int) -> bytes:
        buf = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            op = rng.randrange(4)
            if op == 0 and buf:
                buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
            elif op == 1:
                buf.insert(rng.randint(0, len(buf)), rng.randrange(256))
            elif op == 2 and buf:
                del buf[rng.randrange(len(buf))]
            elif buf:
                a = rng.randrange(len(buf))
                piece = buf[a : a + rng.randint(1, 16)]
                at = rng.randint(0, len(buf))
                buf[at:at] = piece
        return bytes(buf[:max_size])

    return mutate


@dataclass(frozen=True)
class WireMessage:
    """One message of a stream as the mutator handles it: its exact wire bytes and, when they
    read as a frame, the frame's header and content (``header`` is ``None`` for bytes the
    mutator broke on purpose)."""

    raw: bytes
    header: dict[str, Any] | None = None
    content: bytes = b""

    @property
    def decoded(self) -> bool:
        return self.header is not None


def parse_frames(payload: bytes) -> tuple[list[WireMessage], bytes]:
    """Split ``payload`` into the frames the frame reader reads and the tail it cannot read.

    Boundaries are the frames' stream offsets. The stream the decoder fuzzer has just
    checked is not read again: its decoder stopped after the same frames, as the same
    messages (see ``CheckMemo.last_stream``).
    """
    last = FUZZ_MEMO.last_stream
    if last is not None and last[0] == payload:
        _, raws, messages = last
        frames = [WireMessage(raw, dict(m.header), m.content) for raw, m in zip(raws, messages, strict=True)]
        return frames, payload[sum(map(len, raws)) :]
    cached, tail = _parse_frames(payload)
    return list(cached), tail


@lru_cache(maxsize=2048)
def _parse_frames(payload: bytes) -> tuple[tuple[WireMessage, ...], bytes]:
    # Cached: libFuzzer mutates the same corpus entries over and over.
    reader = FrameReader(_PARSE_LIMIT)
    try:
        read = reader.feed(payload)
    except ProtocolError as error:
        read = error.frames
    end = reader.offset  # where the last whole frame ends (and a violation, if any, starts)
    frames: list[WireMessage] = []
    for i, (header, content, start) in enumerate(read):
        stop = read[i + 1].offset if i + 1 < len(read) else end
        frames.append(WireMessage(payload[start:stop], dict(header), content))
    return tuple(frames), payload[end:]


def _render_header(header: dict[str, Any], rng: random.Random) -> bytes:
    style = rng.randrange(8)
    if style == 0:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=rng.random() < 0.5)
    elif style == 1:
        text = json.dumps(header, indent=rng.choice([0, 1, 2]))
    elif style == 2:
        keys = list(header)
        rng.shuffle(keys)
        text = json.dumps({k: header[k] for k in keys}, ensure_ascii=False)
    elif style == 3:
        text = (
            rng.choice([" ", "\n", "\t", "\r\n"])
            + json.dumps(header, ensure_ascii=False)
            + rng.choice(["", " "])
        )
    else:  # the guide's style, most of the time
        text = json.dumps(header, ensure_ascii=False)
    return text.encode("utf-8", "surrogatepass")


def _frame(raw_header: bytes, content: bytes, prefix_delta: int = 0) -> bytes:
    length = min(max(len(raw_header) + prefix_delta, 0), MAX_HEADER_LENGTH)
    return prefix(length) + raw_header + content


def _guide_header(content: bytes, content_type: str, encoding: str) -> dict[str, Any]:
    return {
        "byteorder": "little",
        "content-type": content_type,
        "content-encoding": encoding,
        "content-length": len(content),
    }


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


class StructureMutator:
    """The custom mutator and crossover. ``byte_mutate`` is the fallback (``atheris.Mutate``)."""

    def __init__(
        self, byte_mutate: ByteMutator | None = None, byte_share: float = 0.2, soft_max_size: int = 300
    ) -> None:
        self._byte_mutate = byte_mutate
        self.byte_share = byte_share
        # Past this size, mutations that add messages give way to ones that drop them: the
        # cost of an input grows with its messages, and a few messages reach every state.
        self.soft_max_size = soft_max_size
        self._header_ops: list[Callable[[random.Random, dict[str, Any], WireMessage], None]] = [
            self._drop_key,
            self._add_extension,
            self._retype_value,
            self._change_value,
            self._content_length_off,
            self._content_length_off,
        ]

    # -- entry points (atheris signatures) ------------------------------------------------------

    def mutate(self, data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        byte_mutate = self._byte_mutate or simple_byte_mutate(rng)
        if rng.random() < self.byte_share:
            return byte_mutate(data, max_size)
        fuzz = FuzzInput.decode(data)
        frames, tail = parse_frames(fuzz.payload)
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            frames, tail, fuzz = self._mutate_once(rng, frames, tail, fuzz, byte_mutate, max_size)
        payload = b"".join(f.raw for f in frames) + tail
        out = FuzzInput(payload, fuzz.deltas, fuzz.flags).encode()
        if out == data or len(out) > max_size:
            return byte_mutate(data, max_size)
        return out

    def crossover(self, data1: bytes, data2: bytes, max_out_size: int, seed: int) -> bytes:
        """Messages of ``data1`` with a run of messages of ``data2`` spliced in at a message boundary."""
        rng = random.Random(seed)
        first = FuzzInput.decode(data1)
        frames1, tail1 = parse_frames(first.payload)
        frames2, tail2 = parse_frames(FuzzInput.decode(data2).payload)
        pieces2 = [f.raw for f in frames2] + ([tail2] if tail2 else [])
        if not pieces2:
            return data1[:max_out_size]
        a = rng.randint(0, len(pieces2) - 1)
        b = rng.randint(a + 1, len(pieces2))
        at = rng.randint(0, len(frames1))
        keep_tail = rng.random() < 0.5
        pieces1 = [f.raw for f in frames1]
        before, spliced, after = pieces1[:at], pieces2[a:b], pieces1[at:]
        size = sum(map(len, pieces1)) + sum(map(len, spliced))
        while (before or after) and size > self.soft_max_size:  # shed data1's messages, not the splice
            side = before if before and (not after or rng.random() < 0.5) else after
            size -= len(side.pop(rng.randrange(len(side))))
        payload = b"".join(before + spliced + after) + (tail1 if keep_tail else b"")
        return FuzzInput(payload, first.deltas, first.flags).encode()[:max_out_size]

    # -- one protocol-level mutation -------------------------------------------------------------

    def _mutate_once(
        self,
        rng: random.Random,
        frames: list[WireMessage],
        tail: bytes,
        fuzz: FuzzInput,
        byte_mutate: ByteMutator,
        max_size: int,
    ) -> tuple[list[WireMessage], bytes, FuzzInput]:
        frames = list(frames)
        decoded = [i for i, f in enumerate(frames) if f.decoded]
        if len(frames) > 1 and sum(len(f.raw) for f in frames) + len(tail) > self.soft_max_size:
            del frames[rng.randrange(len(frames))]
            return frames, tail, fuzz
        roll = rng.randrange(100)
        if decoded and roll < 45:
            i = rng.choice(decoded)
            frames[i] = self._mutate_message(rng, frames[i], byte_mutate)
        elif roll < 60:
            frames = self._mutate_sequence(rng, frames)
        elif roll < 72:
            frames, tail = self._mutate_tail(rng, frames, tail, byte_mutate, max_size)
        elif roll < 85:
            fuzz = self._mutate_chunking(rng, fuzz)
        else:
            frames.append(WireMessage(self._known_message(rng)))
        return frames, tail, fuzz

    def _mutate_message(
        self, rng: random.Random, frame: WireMessage, byte_mutate: ByteMutator
    ) -> WireMessage:
        assert frame.header is not None
        header = dict(frame.header)
        content = frame.content
        roll = rng.randrange(100)
        if roll < 40:
            rng.choice(self._header_ops)(rng, header, frame)
            return WireMessage(_frame(_render_header(header, rng), content), header, content)
        if roll < 65:
            content = self._new_content(rng, header, content, byte_mutate)
            return WireMessage(_frame(_render_header(header, rng), content), header, content)
        if roll < 85:
            return WireMessage(self._raw_header_defect(rng, header, content))
        # the 2-byte prefix off by a little or a lot
        raw_header = _render_header(header, rng)
        delta = rng.choice([-2, -1, 1, 2, -len(raw_header), 0xFFFF, rng.randint(-len(raw_header), 300)])
        return WireMessage(_frame(raw_header, content, delta))

    # header operations: they edit ``header`` in place

    def _drop_key(self, rng: random.Random, header: dict[str, Any], frame: WireMessage) -> None:
        if header:
            del header[rng.choice(list(header))]

    def _add_extension(self, rng: random.Random, header: dict[str, Any], frame: WireMessage) -> None:
        key = rng.choice(_EXTENSION_KEYS)
        header[key] = rng.choice(_VALUES)

    def _retype_value(self, rng: random.Random, header: dict[str, Any], frame: WireMessage) -> None:
        key = rng.choice(list(header) or list(REQUIRED_KEYS))
        header[key] = rng.choice(_VALUES)

    def _change_value(self, rng: random.Random, header: dict[str, Any], frame: WireMessage) -> None:
        key = rng.choice(REQUIRED_KEYS)
        if key == "byteorder":
            header[key] = rng.choice(_BYTEORDERS)
        elif key == "content-type":
            header[key] = rng.choice(_CONTENT_TYPES)
        elif key == "content-encoding":
            header[key] = rng.choice(_ENCODINGS)
        else:
            header[key] = len(frame.content)

    def _content_length_off(self, rng: random.Random, header: dict[str, Any], frame: WireMessage) -> None:
        n = len(frame.content)
        header["content-length"] = rng.choice(
            [
                n - 1,
                n + 1,
                n - 2,
                n + 2,
                0,
                -1,
                n * 2 + 1,
                SMALL_MAX_CONTENT_LENGTH,
                SMALL_MAX_CONTENT_LENGTH + 1,
                (1 << 20),
                (1 << 20) + 1,
                2**31,
                2**64,
                n + rng.randint(-300, 300),
            ]
        )

    # content

    def _new_content(
        self, rng: random.Random, header: dict[str, Any], content: bytes, byte_mutate: ByteMutator
    ) -> bytes:
        roll = rng.randrange(4)
        if roll == 0 and content:
            content = byte_mutate(content, len(content) + 32)
        elif roll == 1:
            cut = rng.randint(0, len(content))
            content = content[:cut] if rng.random() < 0.5 else content + content[cut:]
        else:
            value = rng.choice(_JSON_CONTENT)
            if isinstance(value, dict) and "value" in value and rng.random() < 0.5:
                value = {**value, "value": rng.choice(_QUERIES)}
            encoding = rng.choice(_ENCODINGS)
            text = json.dumps(value, ensure_ascii=rng.random() < 0.3)
            try:
                content = text.encode(encoding)
            except (LookupError, UnicodeError):
                content = text.encode("utf-8")
            header["content-type"] = rng.choice(["text/json", "text/json", "text/json", *_CONTENT_TYPES])
            header["content-encoding"] = encoding
        header["content-length"] = len(content)
        return content

    def _raw_header_defect(self, rng: random.Random, header: dict[str, Any], content: bytes) -> bytes:
        text = json.dumps(header, ensure_ascii=False)
        roll = rng.randrange(7)
        if roll == 2 and rng.random() < 0.5:
            roll = 0  # deep nesting is costly to check (a feature per bracket); keep it rarer
        if roll == 0 and header:  # a duplicate key
            key = rng.choice(list(header))
            text = (
                text[:-1] + f"{', ' if header else ''}{json.dumps(key)}: {json.dumps(rng.choice(_VALUES))}}}"
            )
        elif roll == 1:  # a raw token JSON cannot hold, or that strict JSON refuses
            token = rng.choice(_RAW_VALUES)
            key = rng.choice(["content-length", "x-value"])
            header.pop(key, None)
            text = json.dumps(header, ensure_ascii=False)[:-1] + f'{", " if header else ""}"{key}": {token}}}'
        elif roll == 2:  # nesting at and around the limit
            depth = rng.choice([199, 200, 201])
            text = text[:-1] + f'{", " if header else ""}"x-deep": {_deep(depth)}}}'
        elif roll == 3:  # not an object, or not JSON at all
            text = rng.choice(
                ["[]", "null", "0", '"x"', "{", "}", "{}{}", text + "x", text[: rng.randint(0, len(text))]]
            )
        elif roll == 4:  # a byte order mark
            return _frame(b"\xef\xbb\xbf" + text.encode(), content)
        elif roll == 5:  # invalid UTF-8 somewhere in the header
            raw = text.encode()
            at = rng.randint(0, len(raw))
            bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\x80"])
            return _frame(raw[:at] + bad + raw[at:], content)
        else:  # an escaped lone surrogate
            text = text[:-1] + f'{", " if header else ""}"x-note": "a\\ud83db"}}'
        return _frame(text.encode("utf-8", "surrogatepass"), content)

    # the stream

    def _mutate_sequence(self, rng: random.Random, frames: list[WireMessage]) -> list[WireMessage]:
        if not frames:
            return [WireMessage(self._known_message(rng))]
        i = rng.randrange(len(frames))
        roll = rng.randrange(4)
        if roll == 0:
            del frames[i]
        elif roll == 1:
            frames.insert(i, frames[i])
        elif roll == 2:
            j = rng.randrange(len(frames))
            frames[i], frames[j] = frames[j], frames[i]
        else:
            frames.insert(rng.randint(0, len(frames)), WireMessage(self._known_message(rng)))
        return frames

    def _mutate_tail(
        self,
        rng: random.Random,
        frames: list[WireMessage],
        tail: bytes,
        byte_mutate: ByteMutator,
        max_size: int,
    ) -> tuple[list[WireMessage], bytes]:
        roll = rng.randrange(3)
        if roll == 0 and tail:
            return frames, byte_mutate(tail, max(len(tail) + 16, 1))
        if roll == 1 and (frames or tail):  # end the stream inside a message
            whole = b"".join(f.raw for f in frames) + tail
            cut = rng.randint(max(0, len(whole) - 300), len(whole) - 1) if whole else 0
            frames, tail = parse_frames(whole[:cut])
            return frames, tail
        return frames, b""

    def _mutate_chunking(self, rng: random.Random, fuzz: FuzzInput) -> FuzzInput:
        deltas = bytearray(fuzz.deltas)
        flags = fuzz.flags
        roll = rng.randrange(5)
        if roll == 0:
            flags ^= rng.choice([FLAG_SMALL_LIMITS, FLAG_ALTERNATE, FLAG_CYCLE])
        elif roll == 1 and len(deltas) < MAX_DELTAS:
            deltas.insert(rng.randint(0, len(deltas)), rng.choice([0, 1, 2, 3, rng.randrange(256)]))
        elif roll == 2 and deltas:
            del deltas[rng.randrange(len(deltas))]
        elif roll == 3 and deltas:
            deltas[rng.randrange(len(deltas))] = rng.randrange(256)
        else:
            deltas = bytearray(rng.choice([b"\x01", b"\x02", b"\x01\x00", b"\x03\x07"]))
            flags |= FLAG_CYCLE
        return FuzzInput(fuzz.payload, bytes(deltas[:MAX_DELTAS]), flags)

    def _known_message(self, rng: random.Random) -> bytes:
        if rng.random() < 0.5:
            return rng.choice(list(WIRE_VECTORS.values()))
        value = {"action": rng.choice(["search", "search", "fetch"]), "value": rng.choice(_QUERIES)}
        content = json.dumps(value, ensure_ascii=False).encode()
        header = _guide_header(content, "text/json", "utf-8")
        return _frame(json.dumps(header, ensure_ascii=False).encode(), content)
