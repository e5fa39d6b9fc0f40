"""Fuzzing: the invariants shared by the atheris fuzzers and the test suite, the seeds, the mutator.

A fuzz input is a small chunking prefix followed by the byte stream itself, so
libFuzzer chooses both the bytes and the points where they are split. One
module per piece:

- :mod:`~harness.fuzzing.input`: the input format (:class:`FuzzInput`, :func:`split`);
- :mod:`~harness.fuzzing.outcome`: what a decoder makes of a stream, its bookkeeping
  checked on the way (:func:`decode_outcome`, :func:`decode_split`);
- :mod:`~harness.fuzzing.decoder`: the decoder invariants (:func:`check_decoder`,
  :func:`check_decoder_input`, the decoder fuzzer's target);
- :mod:`~harness.fuzzing.server`: the server-connection invariants
  (:func:`check_server_connection`, :func:`check_server_input`, the server fuzzer's target);
- :mod:`~harness.fuzzing.memo`: what the decoder invariants remember across the inputs
  of one fuzzing process (:class:`CheckMemo`, :data:`FUZZ_MEMO`);
- :mod:`~harness.fuzzing.compare`: strict comparisons of values and errors;
- :mod:`~harness.fuzzing.seeds`: the seed corpus (:func:`seed_corpus`), built from the
  codec, the table of violations and the strategies;
- :mod:`~harness.fuzzing.mutator`: the structure-aware mutator (:class:`StructureMutator`).

The invariant functions raise :class:`AssertionError` with a clear message when an
invariant breaks; the fuzzers (``fuzz/fuzz_*.py``) and the regression tests call the
very same functions. None of this is code under test: the fuzzers leave the whole
package uninstrumented.
"""

from __future__ import annotations

from harness.fuzzing.decoder import check_decoder, check_decoder_input
from harness.fuzzing.input import (
    FLAG_ALTERNATE,
    FLAG_CYCLE,
    FLAG_SMALL_LIMITS,
    MAX_CUTS,
    MAX_DELTAS,
    SMALL_MAX_CONTENT_LENGTH,
    SMALL_MAX_PENDING_OUTPUT,
    FuzzInput,
    split,
)
from harness.fuzzing.memo import FUZZ_MEMO, CheckMemo
from harness.fuzzing.mutator import (
    ByteMutator,
    StructureMutator,
    WireMessage,
    parse_frames,
    simple_byte_mutate,
)
from harness.fuzzing.outcome import DecodeOutcome, decode_outcome, decode_split
from harness.fuzzing.seeds import DRAWN_SEED_PREFIXES, WIRE_VECTORS, seed_corpus
from harness.fuzzing.server import check_server_connection, check_server_input

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
    "WIRE_VECTORS",
    "ByteMutator",
    "CheckMemo",
    "DecodeOutcome",
    "FuzzInput",
    "StructureMutator",
    "WireMessage",
    "check_decoder",
    "check_decoder_input",
    "check_server_connection",
    "check_server_input",
    "decode_outcome",
    "decode_split",
    "parse_frames",
    "seed_corpus",
    "simple_byte_mutate",
    "split",
]
