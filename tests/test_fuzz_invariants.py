"""The fuzzing invariants (harness.fuzzing) and the structure-aware mutator, without atheris.

The invariant functions must pass on every valid and every malformed stream, and must
fail, with a message that says what broke, when the code under test misbehaves.
"""

from __future__ import annotations

import collections
import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import harness.decoder
import harness.frames
import harness.strictjson
from harness import Decoder, Message, ProtocolError, ZeroHeaderLength, frame
from harness import strategies as lst
from harness.fuzzing import (
    FLAG_ALTERNATE,
    FLAG_CYCLE,
    FLAG_SMALL_LIMITS,
    FUZZ_MEMO,
    MAX_CUTS,
    WIRE_VECTORS,
    CheckMemo,
    FuzzInput,
    StructureMutator,
    check_decoder,
    check_decoder_input,
    check_server_connection,
    check_server_input,
    decode_outcome,
    parse_frames,
    reference,
    split,
)
from harness.fuzzing.compare import describe

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds"
REQUEST = WIRE_VECTORS["vector-request-morpheus"]


def cuts_of(chunks: list[bytes]) -> list[int]:
    cuts, pos = [], 0
    for chunk in chunks[:-1]:
        pos += len(chunk)
        cuts.append(pos)
    return cuts


# -- the input format -------------------------------------------------------------------


@given(st.binary(max_size=300))
def test_every_byte_string_is_an_input_and_reencodes_to_itself(data: bytes) -> None:
    fuzz = FuzzInput.decode(data)
    assert FuzzInput.decode(fuzz.encode()) == fuzz
    if data and len(data) > data[0] & 0x1F:  # not cut short inside the deltas
        assert fuzz.encode() == data
    cuts = fuzz.cuts
    assert cuts == sorted(cuts)
    assert len(cuts) <= MAX_CUTS
    assert all(0 < c < len(fuzz.payload) for c in cuts)
    assert b"".join(split(fuzz.payload, cuts)) == fuzz.payload


def test_cycled_delta_feeds_one_byte_at_a_time_up_to_the_cut_limit() -> None:
    fuzz = FuzzInput(REQUEST, b"\x01", FLAG_CYCLE)
    assert fuzz.cuts == list(range(1, MAX_CUTS + 1))
    assert FuzzInput(b"abcdef", b"\x02\x00").cuts == [2, 2]
    assert FuzzInput(b"abc", b"\x00", FLAG_CYCLE).cuts == [0]  # all-zero deltas do not cycle


def test_small_limits_flag_lowers_the_content_limit() -> None:
    assert FuzzInput(b"", flags=FLAG_SMALL_LIMITS).max_content_length == 100
    with pytest.raises(ValueError):
        FuzzInput(b"", flags=0x01)


# -- the decoder invariants hold on good and bad streams ------------------------------------


@given(lst.streams(max_size=4, message_strategy=lst.messages(max_content_size=2000)), st.data())
def test_check_decoder_passes_on_valid_streams_split_anywhere(
    stream: lst.Stream, data: st.DataObject
) -> None:
    chunks = data.draw(lst.chunkings(stream.data))
    stepwise = data.draw(st.booleans())
    check_decoder(stream.data, cuts_of(chunks), stepwise=stepwise)
    outcome = decode_outcome(stream.data)
    assert outcome.error is None
    assert [m.content for m in outcome.messages] == [m.content for m in stream.messages]


@given(lst.malformed_messages(), st.binary(max_size=40), st.data())
def test_check_decoder_passes_on_every_violation(
    bad: lst.Malformed, before: bytes, data: st.DataObject
) -> None:
    stream = REQUEST + bad.data
    chunks = data.draw(lst.chunkings(stream))
    check_decoder(stream, cuts_of(chunks), stepwise=data.draw(st.booleans()))
    outcome = decode_outcome(stream)
    assert isinstance(outcome.error, bad.error)
    assert outcome.offset == len(REQUEST) and len(outcome.messages) == 1


# -- ... and fail when the decoder misbehaves ------------------------------------------------


def test_check_decoder_fails_when_a_non_protocol_error_escapes(monkeypatch: pytest.MonkeyPatch) -> None:
    real = harness.frames.parse_header

    def parse_header(raw: bytes, *args: object) -> object:
        if b"needle" in raw:
            raise KeyError("needle")
        return real(raw, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(harness.frames, "parse_header", parse_header)
    check_decoder(REQUEST, [])
    bad = Message.from_bytes(b"x", extra_headers={"x-note": "needle"}).encode()
    with pytest.raises(AssertionError, match=r"KeyError.*only ProtocolError may escape"):
        check_decoder(bad, [])


def test_check_decoder_fails_when_the_split_changes_the_outcome(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Decoder.feed

    def feed(self: Decoder, data: bytes) -> list[Message]:
        messages = real(self, data)
        return messages[:-1] if len(data) == 1 else messages  # loses what a 1-byte chunk completes

    monkeypatch.setattr(Decoder, "feed", feed)
    check_decoder(REQUEST, [])
    with pytest.raises(AssertionError, match=r"fed whole: 1 message\(s\).*split at \[145\].*0 message\(s\)"):
        check_decoder(REQUEST, [len(REQUEST) - 1])


def test_check_decoder_fails_when_close_ignores_buffered_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Decoder, "close", lambda self: None)
    with pytest.raises(AssertionError, match="close"):
        check_decoder(REQUEST[:50], [])


def test_check_decoder_fails_when_the_fast_path_disagrees_with_the_strict_reader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = harness.frames.parse_header

    def parse_header(raw: bytes, *args: object) -> tuple[dict[str, object], int]:
        header, length = real(raw, *args)  # type: ignore[arg-type]
        return {**header, "content-length": float(length)}, length

    monkeypatch.setattr(harness.frames, "parse_header", parse_header)
    with pytest.raises(AssertionError, match="differs from the strict reading"):
        check_decoder(REQUEST, [])


@pytest.mark.parametrize(
    ("cut", "error"),
    [
        (
            slice(None, -1),
            r"message 0 at offset 0: its 40 content bytes are not the last bytes of its frame "
            r"\(offsets 106 to 146\)",
        ),
        (
            slice(1, None),
            r"message 0 at offset 0: its frame holds a 104-byte header, but its prefix is b'\\x00g'",
        ),
    ],
)
def test_check_decoder_fails_when_a_message_is_not_the_next_frame(
    monkeypatch: pytest.MonkeyPatch, cut: slice, error: str
) -> None:
    real = harness.decoder._messages_from_frames

    def messages_from_frames(frames: list[harness.frames.Frame]) -> list[Message]:
        messages = real(frames)
        return [
            Message({**m.header, "content-length": len(m.content[cut])}, m.content[cut]) for m in messages
        ]

    check_decoder(REQUEST, [])
    monkeypatch.setattr(harness.decoder, "_messages_from_frames", messages_from_frames)
    with pytest.raises(AssertionError, match=error):
        check_decoder(REQUEST, [])


def test_a_shared_memo_skips_known_results_but_still_compares_every_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    memo = CheckMemo()
    check_decoder(REQUEST + REQUEST, [], memo=memo)
    raw_header = REQUEST[2:105]
    assert set(memo.strict) == {raw_header}
    assert memo.frames == {(REQUEST, harness.decoder.DEFAULT_MAX_CONTENT_LENGTH)}
    real = harness.frames.parse_header

    def parse_header(raw: bytes, *args: object) -> tuple[dict[str, object], int]:
        header, length = real(raw, *args)  # type: ignore[arg-type]
        return {**header, "byteorder": "big"}, length

    monkeypatch.setattr(harness.frames, "parse_header", parse_header)
    with pytest.raises(AssertionError, match="differs from the strict reading"):
        check_decoder(REQUEST, [], memo=memo)  # the known strict reading, compared again


def test_memo_is_bounded() -> None:
    memo = CheckMemo(limit=2)
    for i in range(5):
        memo.add_frame((bytes([i]), 0))
        memo.strict_reading(str(i).encode())
    assert len(memo.frames) <= 2 and len(memo.strict) <= 2
    assert memo.strict_reading(b"4") == 4
    assert memo.strict_reading(b"{").kind == "json"


def test_check_decoder_fails_when_reencoding_loses_a_header(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Message.encode

    def encode(self: Message) -> bytes:
        header = {k: v for k, v in self.header.items() if not k.startswith("x-")}
        return real(Message(header, self.content))

    monkeypatch.setattr(Message, "encode", encode)
    wire = real(Message.from_bytes(b"abc", extra_headers={"x-id": 1}))
    with pytest.raises(AssertionError, match="re-encodes to bytes that decode to"):
        check_decoder(wire, [])


# -- the server connection invariants -----------------------------------------------------


def test_check_server_connection_passes_on_pipelined_requests_and_errors() -> None:
    stream = REQUEST + WIRE_VECTORS["vector-request-binary"] + b"\x00\x00"
    for cuts in ([], [1], list(range(1, len(stream)))):
        check_server_connection(split(stream, cuts))
        check_server_connection(split(stream, cuts), max_pending_output=1)
    check_server_connection([REQUEST, REQUEST[:30]], eof=False)
    check_server_connection([REQUEST, REQUEST[:30]], eof=True)


def test_check_server_connection_fails_when_a_response_is_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.connection import ServerConnection

    real = ServerConnection.receive_data

    def receive_data(self: ServerConnection, data: bytes) -> bytes:
        out = real(self, data)
        responses = Decoder().feed(out)
        return responses[0].encode() if len(responses) > 1 else out  # answers only the first request

    monkeypatch.setattr(ServerConnection, "receive_data", receive_data)
    check_server_connection([REQUEST])
    with pytest.raises(AssertionError, match=r"calls for 2 response\(s\)"):
        check_server_connection([REQUEST * 2])


def test_check_server_connection_fails_when_the_connection_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.connection import ServerConnection

    def boom(self: ServerConnection) -> bytes:
        raise OSError("boom")

    monkeypatch.setattr(ServerConnection, "receive_eof", boom)
    with pytest.raises(AssertionError, match=r"receive_eof.*raised OSError"):
        check_server_connection([REQUEST])


# -- the structure-aware mutator -----------------------------------------------------------


def _seeds() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SEEDS.iterdir())]


def test_parse_frames_splits_at_the_decoders_message_boundaries() -> None:
    payload = REQUEST + WIRE_VECTORS["vector-response-binary"] + b'\x00\x05{"a"'
    frames, tail = parse_frames(payload)
    assert [f.raw for f in frames] == [REQUEST, WIRE_VECTORS["vector-response-binary"]]
    assert tail == b'\x00\x05{"a"'
    assert frames[0].header is not None and frames[0].header["content-length"] == 41


def test_parse_frames_of_the_stream_just_checked_equals_a_fresh_parse() -> None:
    """The mutator reuses the fuzzer target's whole decode (FUZZ_MEMO.last_stream)."""
    from harness.fuzzing.mutator import _parse_frames

    mutator = StructureMutator()
    corpus = _seeds()
    # over the small content limit: the target stops at it, the mutator's parse does not
    small = [FuzzInput(REQUEST + Message.from_bytes(b"x" * 150).encode(), b"", FLAG_SMALL_LIMITS).encode()]
    inputs = corpus + small + [mutator.mutate(d, 4096, i) for i, d in enumerate(corpus * 3)]
    reused = 0
    for data in inputs:
        check_decoder_input(data)
        payload = FuzzInput.decode(data).payload
        reused += FUZZ_MEMO.last_stream is not None and FUZZ_MEMO.last_stream[0] == payload
        frames, tail = parse_frames(payload)
        fresh, fresh_tail = _parse_frames.__wrapped__(payload)
        assert (frames, tail) == (list(fresh), fresh_tail), data
    assert reused > len(inputs) // 2


def test_mutator_is_deterministic_bounded_and_keeps_inputs_checkable() -> None:
    mutator = StructureMutator()
    corpus = _seeds()
    rng = random.Random(0)
    for seed in range(400):
        data = rng.choice(corpus)
        out = mutator.mutate(data, 1024, seed)
        assert out == mutator.mutate(data, 1024, seed)
        assert len(out) <= 1024
        check_decoder_input(out)
        check_server_input(out)
        corpus.append(out)


def test_mutator_reaches_every_violation_class_from_the_valid_seeds() -> None:
    """Protocol-level mutation of valid messages produces each kind of error (and valid streams)."""
    mutator = StructureMutator(byte_share=0.0)
    valid = [d for d in _seeds() if decode_outcome(FuzzInput.decode(d).payload).error is None]
    seen: collections.Counter[str] = collections.Counter()
    rng = random.Random(1)
    for seed in range(3000):
        fuzz = FuzzInput.decode(mutator.mutate(rng.choice(valid), 4096, seed))
        error = decode_outcome(fuzz.payload, fuzz.max_content_length).error
        seen[type(error).__name__ if error else "valid"] += 1
    assert set(seen) >= {cls.__name__ for cls in lst.VIOLATION_KINDS.values()} | {"valid"}, seen


def test_crossover_splices_whole_messages() -> None:
    mutator = StructureMutator()
    a = FuzzInput(REQUEST * 2, b"\x03", FLAG_ALTERNATE).encode()
    b = FuzzInput(WIRE_VECTORS["vector-request-binary"]).encode()
    for seed in range(50):
        out = FuzzInput.decode(mutator.crossover(a, b, 4096, seed))
        assert (out.deltas, out.flags) == (b"\x03", FLAG_ALTERNATE)
        frames, _tail = parse_frames(out.payload)
        assert WIRE_VECTORS["vector-request-binary"] in [f.raw for f in frames]


def test_check_decoder_fails_when_the_content_limit_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    real = harness.frames.parse_header

    def parse_header(
        raw: bytes, offset: int = 0, max_content_length: int = 0
    ) -> tuple[dict[str, object], int]:
        return real(raw, offset, 1 << 30)

    monkeypatch.setattr(harness.frames, "parse_header", parse_header)
    check_decoder(REQUEST, [], max_content_length=41)
    with pytest.raises(AssertionError, match="41 content bytes accepted over the limit of 40"):
        check_decoder(REQUEST, [], max_content_length=40)


def test_check_decoder_fails_when_a_header_breaking_the_rules_is_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse_header(raw: bytes, *args: object) -> tuple[dict[str, object], int]:
        header = json.loads(raw)
        return header, header["content-length"]  # JSON only: no header rule applied

    wire = frame(
        b'{"byteorder": "middle", "content-type": "x", "content-encoding": "y", "content-length": 1}', b"z"
    )
    check_decoder(REQUEST, [])
    monkeypatch.setattr(harness.frames, "parse_header", parse_header)
    with pytest.raises(
        AssertionError, match=r"message 0 at offset 0: .* breaks the header rules \(InvalidHeaderValue"
    ):
        check_decoder(wire, [])


def test_check_decoder_fails_when_the_messages_stop_short_of_the_decoders_offset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = harness.decoder._messages_from_frames

    def messages_from_frames(frames: list[harness.frames.Frame]) -> list[Message]:
        return real(frames)[:1]  # a second frame in the same call is consumed but lost

    check_decoder(REQUEST + REQUEST, [])
    monkeypatch.setattr(harness.decoder, "_messages_from_frames", messages_from_frames)
    with pytest.raises(
        AssertionError,
        match=rf"1 message\(s\) before it stopped at offset {2 * len(REQUEST)} .* "
        rf"end at offset {len(REQUEST)}$",
    ):
        check_decoder(REQUEST + REQUEST, [])


# -- the reference codec -------------------------------------------------------------------


def test_reference_codec_is_a_copy_of_the_codec_that_patches_of_the_codec_leave_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in reference.COPIED:
        copy = sys.modules[f"harness.fuzzing.reference.{name.rsplit('.', 1)[1]}"]
        assert copy is not sys.modules[name] and copy.__file__ == sys.modules[name].__file__
    assert reference.loads_strict.__code__ is not harness.strictjson.loads_strict.__code__
    assert reference.Decoder.__init__.__globals__["FrameReader"] is reference.FrameReader
    assert reference.FrameReader(1).max_content_length == 1
    # The exception classes of harness.errors are shared: one ProtocolError for both.
    with pytest.raises(ZeroHeaderLength):
        reference.Decoder().feed(b"\x00\x00")

    expected = [(m.header, m.content) for m in Decoder().feed(REQUEST)]

    def broken(*args: object) -> object:
        raise AssertionError("the codec under test, patched")

    monkeypatch.setattr(harness.strictjson, "loads_strict", broken)
    monkeypatch.setattr(harness.frames, "parse_header", broken)
    assert reference.loads_strict(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}
    assert [(m.header, m.content) for m in reference.Decoder().feed(REQUEST)] == expected
    with pytest.raises(reference.JSONViolation):
        reference.loads_strict(b'{"a": NaN}')


@pytest.mark.parametrize("seed", sorted(p.name for p in SEEDS.iterdir())[:40])
def test_reference_decoder_agrees_with_the_decoder_on_the_seeds(seed: str) -> None:
    fuzz = FuzzInput.decode((SEEDS / seed).read_bytes())
    outcomes = []
    for decoder in (Decoder(fuzz.max_content_length), reference.Decoder(fuzz.max_content_length)):
        try:
            messages = decoder.feed(fuzz.payload)
            decoder.close()
            error = None
        except ProtocolError as exc:
            messages, error = exc.messages, exc
        outcomes.append(([(m.header, m.content) for m in messages], describe(error)))
    assert outcomes[0] == outcomes[1]
