"""``harness pcap from-bytes --fuzz-input``: a fuzzer input becomes a capture of its own chunks.

The capture is read back with scapy; the client's TCP payloads must be exactly the
chunks the fuzzers feed (``FuzzInput.decode(data)`` cut at its cuts), with the
chunking header nowhere on the wire. A real (deliberately crashing) libFuzzer run
checks that the crash message prints the command, and that the command works on
the file libFuzzer writes.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from scapy.layers.inet import TCP
from scapy.utils import PcapNgReader

from harness.cli import main
from harness.fuzzing import FLAG_ALTERNATE, FLAG_CYCLE, FuzzInput, split
from harness.message import Message

REPO = Path(__file__).resolve().parent.parent
PORT = 65432
STREAM = (
    Message.from_json({"action": "search", "value": "morpheus"}).encode()
    + Message.from_json({"action": "search", "value": "ring"}).encode()
)


def client_segments(path: Path) -> tuple[list[bytes], bool]:
    """The client's TCP payloads in order, and whether the client sent a FIN."""
    payloads: list[bytes] = []
    fin = False
    with PcapNgReader(str(path)) as reader:
        for packet in reader:
            tcp = packet[TCP]
            if tcp.dport != PORT:
                continue
            if bytes(tcp.payload):
                payloads.append(bytes(tcp.payload))
            fin = fin or bool(tcp.flags & 0x01)
    return payloads, fin


def test_fuzz_input_capture_sends_exactly_the_inputs_chunks(tmp_path: Path) -> None:
    fuzz = FuzzInput(STREAM, deltas=bytes([3, 5, 0, 40]))
    data = fuzz.encode()
    chunks = split(fuzz.payload, fuzz.cuts)
    assert len(chunks) == 5 and chunks[2] == b""  # a delta of 0: an empty chunk
    (tmp_path / "crash-1").write_bytes(data)
    out = tmp_path / "crash-1.pcapng"
    assert main(["pcap", "from-bytes", "--fuzz-input", str(tmp_path / "crash-1"), "--out", str(out)]) == 0
    segments, fin = client_segments(out)
    assert segments == [c for c in chunks if c]
    assert b"".join(segments) == STREAM  # the chunking header is not stream data
    assert fin


def test_fuzz_input_that_cycles_its_deltas_is_cut_one_byte_at_a_time(tmp_path: Path) -> None:
    fuzz = FuzzInput(STREAM[:20], deltas=b"\x01", flags=FLAG_CYCLE)
    (tmp_path / "in").write_bytes(fuzz.encode())
    out = tmp_path / "out.pcapng"
    assert main(["pcap", "from-bytes", "--fuzz-input", str(tmp_path / "in"), "--out", str(out)]) == 0
    segments, _ = client_segments(out)
    assert segments == [STREAM[i : i + 1] for i in range(20)]


def test_fuzz_input_without_end_of_stream_leaves_the_client_open(tmp_path: Path) -> None:
    fuzz = FuzzInput(STREAM, deltas=b"\x07", flags=FLAG_ALTERNATE)
    (tmp_path / "in").write_bytes(fuzz.encode())
    out = tmp_path / "out.pcapng"
    assert main(["pcap", "from-bytes", "--fuzz-input", str(tmp_path / "in"), "--out", str(out)]) == 0
    segments, fin = client_segments(out)
    assert segments == [STREAM[:7], STREAM[7:]]
    assert not fin


def test_fuzz_input_with_respond_includes_the_servers_answers(tmp_path: Path) -> None:
    (tmp_path / "in").write_bytes(FuzzInput(STREAM, deltas=b"\x09").encode())
    out = tmp_path / "out.pcapng"
    args = ["pcap", "from-bytes", "--fuzz-input", "--respond", str(tmp_path / "in"), "--out", str(out)]
    assert main(args) == 0
    with PcapNgReader(str(out)) as reader:
        answers = b"".join(bytes(p[TCP].payload) for p in reader if p[TCP].sport == PORT)
    assert answers.count(b'"content-type"') == 2  # one response per request


def test_fuzz_input_and_cuts_are_exclusive(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").write_bytes(b"\x00")
    assert (
        main(["pcap", "from-bytes", "--fuzz-input", "--cuts", "1", str(tmp_path / "in"), "--out", "x"]) == 2
    )
    assert "not allowed with" in capsys.readouterr().err


CRASHING_FUZZER = """
import sys
sys.path.insert(0, {fuzz_dir!r})
import runner

def target(data):
    if b"ring" in data:
        raise RuntimeError("found the ring")

runner.main("crashing", "a target that crashes", target, __file__)
"""


@pytest.mark.slow
def test_crash_message_prints_the_command_that_makes_the_capture(tmp_path: Path) -> None:
    script = tmp_path / "crashing.py"
    script.write_text(textwrap.dedent(CRASHING_FUZZER.format(fuzz_dir=str(REPO / "fuzz"))))
    seed_dir = tmp_path / "seeds"
    seed_dir.mkdir()
    (seed_dir / "ring").write_bytes(FuzzInput(STREAM, deltas=b"\x05\x05").encode())
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "-runs=100",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(seed_dir),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0, result.stderr[-2000:]
    match = re.search(r"INFO: to open this input in Wireshark: (harness pcap from-bytes .*)", result.stderr)
    assert match, result.stderr[-2000:]
    argv = shlex.split(match.group(1))
    crash = Path(argv[argv.index("--fuzz-input") + 1])
    assert crash.read_bytes() == (seed_dir / "ring").read_bytes()  # the file libFuzzer wrote
    assert main(argv[1:]) == 0
    segments, _ = client_segments(Path(argv[argv.index("--out") + 1]))
    assert segments == [STREAM[:5], STREAM[5:10], STREAM[10:]]
