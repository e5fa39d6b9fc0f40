#!/usr/bin/env python3
"""Where the reference server's CPU goes, per request, and what the event loop changes.

Two parts, one run:

1. **sans-IO**, in this process, CPU time (``time.process_time``) per request for the
   generator's request mix (four searches and a binary request) fed 10 requests per
   chunk: the decoder alone, the search application alone, the encoder alone (the public
   API's path), the same two steps the way ``ServerConnection`` takes them (the decoder
   handing over (header, content) pairs, the search application's direct encoder), and
   the whole :class:`harness.ServerConnection` (decoder + application + encoder +
   bookkeeping);
2. **the server**, ``harness serve`` in a child process on asyncio and on uvloop, loaded
   by ``harness.load`` (50 connections, pipeline depth 10): the server process's CPU
   seconds (from ``/proc``) per answered request. CPU per request is robust to other
   processes on the machine, unlike requests per second.

Ratios are against ServerConnection's cost measured in the same run: what the I/O layer
(system calls, event loop, transport) adds on each loop.

    python benchmarks/bench_io_loop.py [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from harness import Decoder, Message, ServerConnection
from harness.apps import search_app
from harness.frames import FrameReader
from harness.load import LoadConfig, ServerProcess, run_load

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REQUESTS = [Message.from_json({"action": "search", "value": v}) for v in ("morpheus", "ring", "🐶", "needle")]
REQUESTS.append(Message.from_bytes("binary😃".encode()))
CHUNK = b"".join(m.encode() for m in REQUESTS) * 2  # 10 requests, as a pipelined client sends them
PER_CHUNK = 10


def cpu_per_request(work: Callable[[], object], chunks: int) -> float:
    """Microseconds of CPU per request, best of 5 runs of ``chunks`` calls."""
    best = float("inf")
    for _ in range(5):
        started = time.process_time()
        for _ in range(chunks):
            work()
        best = min(best, time.process_time() - started)
    return best / (chunks * PER_CHUNK) * 1e6


def sans_io(chunks: int) -> dict[str, float]:
    decoded = Decoder().feed(CHUNK)
    responses = [search_app(m) for m in decoded]
    decoder = Decoder()
    reader = FrameReader()  # as ServerConnection reads
    pair_encode = search_app.encode_response
    pairs = [(m.header, m.content) for m in decoded]
    connection = ServerConnection()
    return {
        "decoder (Decoder.feed)": cpu_per_request(lambda: decoder.feed(CHUNK), chunks),
        "application (search_app)": cpu_per_request(lambda: [search_app(m) for m in decoded], chunks),
        "encoder (Message.encode)": cpu_per_request(lambda: [r.encode() for r in responses], chunks),
        "frame reader (the server's)": cpu_per_request(lambda: reader.feed(CHUNK), chunks),
        "app + encoder, direct (server's)": cpu_per_request(
            lambda: [pair_encode(h, c) for h, c in pairs], chunks
        ),
        "ServerConnection.receive_data": cpu_per_request(lambda: connection.receive_data(CHUNK), chunks),
    }


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_cpu_per_request(loop: str, args: argparse.Namespace) -> tuple[float, float]:
    """(microseconds of server CPU per answered request, requests/s), medians over the rounds."""
    argv = [sys.executable, "-m", "harness", "serve", "--port", "0", "--log-level", "warning", "--loop", loop]
    server = ServerProcess(argv)
    host, port = server.start()
    costs, rates = [], []
    try:
        for _ in range(args.rounds):
            config = LoadConfig(host, port, connections=50, depth=10, duration=args.duration, warmup=0.5)
            before = process_cpu_seconds(server.pid)
            started = time.perf_counter()
            result = run_load(config)
            cpu = process_cpu_seconds(server.pid) - before
            wall = time.perf_counter() - started
            if result.errors_total:
                raise SystemExit(f"{loop}: {result.errors_total} errors under load")
            # The server's CPU covers the warm-up too: count the requests of the whole window.
            answered = result.requests_per_second * wall
            costs.append(cpu / answered * 1e6)
            rates.append(result.requests_per_second)
    finally:
        server.stop()
    return statistics.median(costs), statistics.median(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds of load per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=5000, help="chunks of 10 requests per sans-IO run")
    args = parser.parse_args()

    parts = sans_io(args.chunks)
    baseline = parts["ServerConnection.receive_data"]
    print("sans-IO, CPU per request (10 requests per chunk)")
    for name, cost in parts.items():
        print(f"  {name:32} {cost:6.2f} us   {cost / baseline:5.2f}x ServerConnection")

    loops = ["asyncio"]
    try:
        import uvloop  # noqa: F401

        loops.append("uvloop")
    except ImportError:
        print("uvloop is not installed: measuring asyncio only", file=sys.stderr)
    print(f"\nharness serve under harness.load (50 connections x depth 10), median of {args.rounds} rounds")
    measured = {}
    for loop in loops:
        cost, rate = server_cpu_per_request(loop, args)
        measured[loop] = cost
        print(
            f"  {loop:8} server CPU {cost:6.2f} us/request ({cost / baseline:4.2f}x ServerConnection; "
            f"I/O layer {cost - baseline:5.2f} us)   {rate:10,.0f} req/s"
        )
    if len(measured) == 2:
        print(f"\n  uvloop/asyncio server CPU per request: {measured['uvloop'] / measured['asyncio']:.2f}x")
    load = os.getloadavg()[0]
    print(
        f"\nload average {load:.2f} on {os.cpu_count()} CPUs (req/s is noisy under load; CPU/request less so)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
