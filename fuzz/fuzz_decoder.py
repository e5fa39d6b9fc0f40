#!/usr/bin/env python3
"""Fuzz the lpjson decoder with atheris (libFuzzer); see fuzz/README.md.

    python fuzz/fuzz_decoder.py                       # until Ctrl-C, corpus in fuzz/work/decoder/
    python fuzz/fuzz_decoder.py -runs=100000 -seed=1  # a bounded run
    python fuzz/fuzz_decoder.py -fork=2               # two processes
    python fuzz/fuzz_decoder.py crash-1234            # replay one input

Every input runs through harness.fuzzing.check_decoder_input: only ProtocolError
escapes, the same bytes split at the input's chosen points decode identically,
messages re-encode to equal messages, close() agrees with the buffer.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner

# Instrument the code under test only (the frame layer, the header rules, the decoder,
# the message class, the strict JSON reader); the checks in harness.fuzzing stay
# uninstrumented so that their branches do not count as coverage, and their reference
# readings run in uninstrumented copies of the codec (harness.fuzzing.reference).
runner.import_instrumented(
    ["harness.frames", "harness.header", "harness.decoder", "harness.message", "harness.strictjson"]
)

from harness.fuzzing import check_decoder_input  # noqa: E402  (only after the instrumented imports)

if __name__ == "__main__":
    runner.main("decoder", "the lpjson decoder (harness.Decoder)", check_decoder_input, __file__)
