"""Codec cost in CPU instructions per message, counted by valgrind: a figure the load of a
shared machine cannot move.

Wall-clock benchmarks on a busy 2-core machine drift by tens of percent; the number of
instructions a piece of work executes does not (``valgrind --tool=callgrind`` counts them,
the same total run after run). For each workload this script runs Python twice under
callgrind, once building the input only and once building it and doing the work, and
divides the difference by the number of messages:

- ``decoder, repeated headers``: ``Decoder.feed`` on pipelined search requests in 4096-byte
  chunks (``bench_decoder.py``'s stream), headers that repeat;
- ``decoder, headers never repeat``: the same with 64 content-lengths in turn
  (``bench_decoder.py``'s ``-distinct`` stream);
- ``decoder, whole chunks``: ``Decoder.feed`` on ``bench_io_loop.py``'s chunk of 10 requests;
- ``ServerConnection``: ``receive_data`` on that chunk (decode, search application, encode).

``--baseline PATH`` counts the same workloads against the harness package of another
checkout (e.g. ``git worktree add /tmp/before <commit>``) and prints the ratio: the code
under test is all that differs between the two runs.

Run: ``python benchmarks/bench_instructions.py [--baseline PATH] [--messages N]``
(needs valgrind: ``apt-get install valgrind``; about a minute).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: The workload script, run by each measured interpreter: ``WORKLOAD N do|build``.
_SCRIPT = r"""
import sys
from harness import Decoder, Message, ServerConnection
workload, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
VALUES = ["morpheus", "ring", "\U0001f436", "needle", "white rabbit", "x" * 24]
if workload in ("repeated", "distinct"):
    if workload == "repeated":
        wire = [Message.from_json({"action": "search", "value": VALUES[i % 6]}).encode() for i in range(n)]
    else:
        values = ["n" * (1 + i % 64) for i in range(n)]
        wire = [Message.from_json({"action": "search", "value": v}).encode() for v in values]
    data = b"".join(wire)
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    if mode == "do":
        decoder = Decoder()
        for chunk in chunks:
            decoder.feed(chunk)
else:
    queries = ("morpheus", "ring", "\U0001f436", "needle")
    requests = [Message.from_json({"action": "search", "value": v}) for v in queries]
    requests.append(Message.from_bytes("binary\U0001f603".encode()))
    chunk = b"".join(m.encode() for m in requests) * 2
    if mode == "do":
        worker = ServerConnection().receive_data if workload == "connection" else Decoder().feed
        for _ in range(n // 10):
            worker(chunk)
"""

WORKLOADS = {
    "repeated": "decoder, repeated headers",
    "distinct": "decoder, headers never repeat",
    "chunks": "decoder, whole chunks of 10",
    "connection": "ServerConnection, chunks of 10",
}


def instructions(tree: Path, script: Path, workload: str, n: int, mode: str) -> int:
    env = dict(os.environ, PYTHONPATH=str(tree))
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            workload,
            str(n),
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"valgrind printed no instruction count:\n{out.stderr[-2000:]}")
    return int(found.group(1))


def per_message(tree: Path, script: Path, workload: str, n: int) -> float:
    return (
        instructions(tree, script, workload, n, "do") - instructions(tree, script, workload, n, "build")
    ) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--baseline", type=Path, help="a checkout whose harness package is the baseline")
    parser.add_argument("--messages", type=int, default=20_000, help="messages per workload (default 20000)")
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("bench_instructions: valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    if args.baseline is not None and not (args.baseline / "harness" / "__init__.py").is_file():
        print(f"bench_instructions: {args.baseline} holds no harness package", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "workload.py"
        script.write_text(_SCRIPT, encoding="utf-8")
        print(f"instructions per message (valgrind callgrind, {args.messages} messages per workload)")
        header = f"{'workload':<34}{'this tree':>12}"
        if args.baseline is not None:
            header += f"{'baseline':>12}{'ratio':>8}"
        print(header)
        for workload, label in WORKLOADS.items():
            print(f"  .. {label}", file=sys.stderr, flush=True)
            ours = per_message(ROOT, script, workload, args.messages)
            line = f"{label:<34}{ours:>12,.0f}"
            if args.baseline is not None:
                base = per_message(args.baseline, script, workload, args.messages)
                line += f"{base:>12,.0f}{ours / base:>7.2f}x"
            print(line, flush=True)
    if args.baseline is not None:
        print("(ratio: this tree's instructions over the baseline's; below 1 is faster)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
