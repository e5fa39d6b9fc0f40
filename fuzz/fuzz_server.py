#!/usr/bin/env python3
"""Fuzz the reference server's per-connection handling with atheris (libFuzzer).

harness.connection.ServerConnection is the code the asyncio server runs on the
bytes it receives; here it runs in process, without sockets, fed the input's
stream in the input's chunks (see harness.fuzzing.FuzzInput).

    python fuzz/fuzz_server.py                       # until Ctrl-C, corpus in fuzz/work/server/
    python fuzz/fuzz_server.py -runs=100000 -seed=1  # a bounded run
    python fuzz/fuzz_server.py -fork=2               # two processes
    python fuzz/fuzz_server.py crash-1234            # replay one input

Every input runs through harness.fuzzing.check_server_input: no call raises,
everything the server emits decodes and is the search application's answer to
each request (then the error message, if the stream breaks the protocol), the
connection ends closed or cleanly waiting, output per call and buffering stay bounded.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import runner

# Instrument the code under test only (connection, applications, codec), not the checks
# in harness.fuzzing.
runner.import_instrumented(
    [
        "harness.connection",
        "harness.apps",
        "harness.frames",
        "harness.header",
        "harness.decoder",
        "harness.message",
        "harness.strictjson",
    ]
)

from harness.fuzzing import check_server_input  # noqa: E402  (only after the instrumented imports)

if __name__ == "__main__":
    runner.main(
        "server",
        "the server's connection handling (harness.ServerConnection)",
        check_server_input,
        __file__,
        pcap_options="--respond",
    )
