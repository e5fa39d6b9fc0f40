"""Capture writer and dissector speed, each against a baseline measured in the same run.

1. Writer: frames per second of ``harness.capture.write_sessions`` (planning, seq/ack
   bookkeeping, scapy packet building, pcapng blocks) against the floor of the same
   number of bare ``bytes(Ether()/IP()/TCP()/Raw())`` builds in scapy.
2. Dissector: seconds for tshark to read a capture of many pipelined lpjson messages
   with ``lpjson.lua`` against tshark reading the same capture without the script, best
   of ``--runs`` runs each, alternating, in four modes. *Full tree*: ``-T fields -e
   lpjson.content_length`` against ``-T fields -e tcp.len``; tshark 4.0 builds the whole
   visible tree for ``-T fields`` (as for ``-V`` or ``-T json``, or the GUI's selected
   packet), so this is the full cost of the dissector: every tree item (thousands of
   instructions each through Wireshark's Lua API) and Wireshark's JSON dissector on every
   message's content. *Full tree, JSON subtree off*: the same with the dissector's
   ``json_subtree`` preference off (each content as one text line instead of Wireshark's
   JSON subtree). *Packet list*: tshark's summary lines, as the GUI's packet list: no
   tree shown and no lpjson field referenced, so the dissector builds only the Info column
   and its request/response bookkeeping. *Display filter*: the same with ``-Y
   'lpjson.action == "search"'`` (against ``-Y 'tcp.len > 0'``): no tree shown, and only
   the items a filter names are added.

Run: ``python benchmarks/bench_pcap.py`` (``--quick`` for a smoke run, ``--only dissector``
to skip the slow writer part; ``TSHARK=/path/to/tshark`` measures another tshark).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from harness.capture.dissector import dissector_path
from harness.capture.tshark import find_tshark, tshark_env
from harness.capture.writer import Session, write_sessions
from harness.message import Message


def bench_writer(sessions: int) -> None:
    request = Message.from_json({"action": "search", "value": "morpheus"}).encode()
    response = Message.from_json({"result": "Follow the white rabbit. 🐰"}).encode()
    todo = [Session.exchange([request], [response]) for _ in range(sessions)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        frames = write_sessions(Path(tmp) / "w.pcapng", todo)
        writer = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(frames):
        bytes(
            Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
            / IP(src="192.0.2.1", dst="192.0.2.2")
            / TCP(sport=49152, dport=65432, seq=i, flags="PA")
            / Raw(request)
        )
    floor = time.perf_counter() - start
    print(
        f"writer: {frames} frames in {writer:.2f} s = {frames / writer:,.0f} frames/s; "
        f"bare scapy builds: {frames / floor:,.0f} frames/s; writer/floor time ratio {writer / floor:.2f}"
    )


def _tshark(args: list[str], home: str) -> float:
    start = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True, env=tshark_env(home), timeout=600)
    return time.perf_counter() - start


def bench_dissector(messages: int, per_send: int, runs: int = 3) -> None:
    exe = find_tshark()
    if exe is None:
        print("dissector: skipped, tshark is not installed")
        return
    request = Message.from_json({"action": "search", "value": "morpheus"}).encode()
    sends = [request * per_send] * (messages // per_send)
    script = ["-X", f"lua_script:{dissector_path()}"]
    # (what, tshark alone, tshark with lpjson.lua)
    modes = [
        (
            "full tree (-T fields)",
            ["-T", "fields", "-e", "tcp.len"],
            [*script, "-T", "fields", "-e", "lpjson.content_length"],
        ),
        (
            "full tree, JSON subtree off (-o lpjson.json_subtree:FALSE)",
            ["-T", "fields", "-e", "tcp.len"],
            [*script, "-o", "lpjson.json_subtree:FALSE", "-T", "fields", "-e", "lpjson.content_length"],
        ),
        ("packet list (no tree)", [], script),
        ("display filter (no tree)", ["-Y", "tcp.len > 0"], [*script, "-Y", 'lpjson.action == "search"']),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        capture = Path(tmp) / "d.pcapng"
        frames = write_sessions(capture, [Session.exchange(sends)])
        base = [exe, "-n", "-r", str(capture)]
        for what, alone, with_lua in modes:
            alone_times, lua_times = [], []
            for _ in range(runs):  # alternating: each lpjson run is paired with the baseline before it
                alone_times.append(_tshark([*base, *alone], tmp))
                lua_times.append(_tshark([*base, *with_lua], tmp))
            ratios = [lua / bare for bare, lua in zip(alone_times, lua_times, strict=True)]
            baseline, lpjson = min(alone_times), min(lua_times)
            print(
                f"dissector, {what}: {messages} messages in {frames} frames: tshark alone {baseline:.2f} s, "
                f"with lpjson.lua {lpjson:.2f} s (ratio of the bests {lpjson / baseline:.2f}, median of "
                f"the {runs} paired runs {statistics.median(ratios):.2f}; "
                f"{messages / max(lpjson - baseline, 1e-9):,.0f} messages/s for the dissector itself)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", choices=("writer", "dissector"), help="run one of the two parts")
    parser.add_argument("--runs", type=int, default=3, help="tshark runs of each kind (best counts)")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    print(f"python {sys.version.split()[0]}")
    if args.only != "dissector":
        bench_writer(50 if args.quick else 1000)
    if args.only != "writer":
        bench_dissector(1000 if args.quick else 20000, 10, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
