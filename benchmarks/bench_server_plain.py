#!/usr/bin/env python3
"""Server throughput measured by a plain, independent load generator.

``bench_server.py`` measures with ``harness.load``, a generator tuned to cost well under
a microsecond per answer, which lifts the bare echo ceiling to over a million
requests/s on this loopback. This script asks the same question with the kind of
generator a user would write in an afternoon, and shares no code with ``harness.load``:
asyncio streams, for each connection a loop that writes a batch of ``depth`` pipelined
requests, then reads each answer with ``readexactly`` (2-byte length, header,
``json.loads`` of the header, content) and checks it byte for byte against the answer
expected from that server (the request itself for the echo server, the search
application's response for the reference server).

Same run, same generator, interleaved rounds, median of the rounds:

- ``echo ceiling``: benchmarks/echo_server.py (asyncio), no parsing at all;
- ``reference``: ``harness serve``, on asyncio and on uvloop.

    python benchmarks/bench_server_plain.py [-c 50] [-d 10] [--duration 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

from harness.apps import search_app
from harness.load import ServerProcess
from harness.message import Message

HERE = Path(__file__).resolve().parent

REQUESTS = [
    Message.from_json({"action": "search", "value": value})
    for value in ("morpheus", "ring", "\U0001f436", "needle")
] + [Message.from_bytes("binary\U0001f603".encode())]


async def connection(
    host: str, port: int, depth: int, batch: bytes, answers: list[bytes], stop_at: float, counts: list[int]
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            writer.write(batch)
            await writer.drain()
            for expected in answers:
                prefix = await reader.readexactly(2)
                raw_header = await reader.readexactly(int.from_bytes(prefix, "big"))
                header = json.loads(raw_header)
                content = await reader.readexactly(header["content-length"])
                if prefix + raw_header + content == expected:
                    counts[0] += 1
                else:
                    counts[1] += 1
    finally:
        writer.close()


async def run(host: str, port: int, connections: int, depth: int, duration: float, echo: bool) -> list[int]:
    # Each connection sends the requests in turn, ``depth`` at a time.
    batch_requests = [REQUESTS[i % len(REQUESTS)] for i in range(depth)]
    batch = b"".join(r.encode() for r in batch_requests)
    answers = [r.encode() if echo else search_app(r).encode() for r in batch_requests]
    counts = [0, 0]  # answers as expected, wrong answers
    warm: list[int] = [0, 0]
    await asyncio.gather(
        *(connection(host, port, depth, batch, answers, time.perf_counter() + 0.3, warm) for _ in range(4))
    )
    stop_at = time.perf_counter() + duration
    start = time.perf_counter()
    await asyncio.gather(
        *(connection(host, port, depth, batch, answers, stop_at, counts) for _ in range(connections))
    )
    elapsed = time.perf_counter() - start
    return [round(counts[0] / elapsed), counts[1]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connections", type=int, default=50)
    parser.add_argument("-d", "--depth", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    python = sys.executable
    setups = {
        "echo ceiling (asyncio)": ([python, str(HERE / "echo_server.py"), "--port", "0"], True),
        "reference (asyncio)": (
            [python, "-m", "harness", "serve", "--port", "0", "--log-level", "warning", "--loop", "asyncio"],
            False,
        ),
        "reference (uvloop)": (
            [python, "-m", "harness", "serve", "--port", "0", "--log-level", "warning", "--loop", "uvloop"],
            False,
        ),
    }
    load_before = os.getloadavg()[0]
    rates: dict[str, list[int]] = {name: [] for name in setups}
    errors: dict[str, int] = dict.fromkeys(setups, 0)
    servers = {name: ServerProcess(argv) for name, (argv, _) in setups.items()}
    try:
        for server in servers.values():
            server.start()
        for round_ in range(args.rounds):
            for name, (_, echo) in setups.items():
                address = servers[name].address
                assert address is not None
                rate, wrong = asyncio.run(
                    run(address[0], address[1], args.connections, args.depth, args.duration, echo)
                )
                rates[name].append(rate)
                errors[name] += wrong
                print(f"round {round_ + 1}/{args.rounds}  {name:24} {rate:>9,} req/s", file=sys.stderr)
    finally:
        for server in servers.values():
            server.stop()

    print(
        f"\nplain asyncio-streams generator: {args.connections} connections, pipeline depth "
        f"{args.depth}, {args.duration:g} s per run, median of {args.rounds} rounds\n"
    )
    print(f"{'server':26} {'req/s':>10} {'wrong answers':>14}")
    medians = {name: statistics.median(values) for name, values in rates.items()}
    for name, value in medians.items():
        print(f"{name:26} {value:>10,.0f} {errors[name]:>14}")
    ceiling = medians["echo ceiling (asyncio)"]
    print()
    for name in ("reference (asyncio)", "reference (uvloop)"):
        print(f"{name + '/echo ceiling':40} {medians[name] / ceiling:5.2f}x  (target >= 0.5)")
    print(
        f"\nload average {load_before:.2f} -> {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs. With this "
        "generator the generator's own CPU sets the echo ceiling;\nbench_server.py measures with a "
        "generator several times cheaper per answer, where the server's CPU is what counts."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
