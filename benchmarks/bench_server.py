#!/usr/bin/env python3
"""Server throughput: the reference server against the echo ceiling and the guide's pattern.

One run, one load generator (harness.load, in this process), every server in its own
child process so that server and generator each get a core:

- ``echo``: benchmarks/echo_server.py, a bare asyncio Protocol that writes back what it
  reads, no parsing: the ceiling for a Python server on this loopback (the generator
  counts each echoed request as an answer);
- ``reference``: ``harness serve`` (the reference server: Decoder, search app, encoder);
- ``reference, connect-per-request``: the same server driven the guide's way, a new TCP
  connection for every request;

each server on the default asyncio event loop and on uvloop. The configurations run
interleaved for ``--rounds`` rounds (other processes on a 2-core machine make single runs
noisy) and the median of the rounds is reported, with the generator's and the server's
CPU use (a generator near 100% would mean the generator, not the server, is the limit).

The generator sends the search application's requests in turn (the four searches of
docs/PROTOCOL.md#a1, hits and a miss, and a binary request), so no figure rests on one repeated
request. Two ratios against the echo ceiling come out of the same run:

- **requests/s**: what this generator gets from each server on this machine. Whoever is
  short of CPU sets each rate (the echo server needs so little that the generator, or
  the share of the CPUs other processes leave, usually sets its rate), so this ratio says
  as much about the generator and the machine as about the server;
- **per server CPU-second**: answers per second of the server's own CPU (read from
  /proc), i.e. the inverse ratio of what each server spends per answered request. It
  does not depend on who is the bottleneck, and is the requests/s ratio the two servers
  would show with a core each and a generator that cost nothing.

    python benchmarks/bench_server.py [-c 50] [-d 10] [--duration 3] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from harness.load import LoadConfig, LoadResult, ServerProcess, run_load

HERE = Path(__file__).resolve().parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Setup:
    name: str
    loop: str
    mode: str
    argv: list[str]


@dataclass
class Sample:
    result: LoadResult
    generator_cpu: float  # fraction of one core
    server_cpu: float


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def setups(loops: list[str]) -> list[Setup]:
    out = []
    for loop in loops:
        echo = [sys.executable, str(HERE / "echo_server.py"), "--port", "0"]
        reference = [sys.executable, "-m", "harness", "serve", "--port", "0", "--log-level", "warning"]
        reference += ["--loop", loop]
        if loop == "uvloop":
            echo.append("--uvloop")
        out.append(Setup("echo ceiling", loop, "pipeline", echo))
        out.append(Setup("reference", loop, "pipeline", reference))
        out.append(Setup("reference", loop, "connect-per-request", reference))
    return out


def process_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def measure(setup: Setup, server: ServerProcess, args: argparse.Namespace) -> Sample:
    """One run of the generator against ``server``; CPU shares over the run's whole window
    (warm-up included: the load is the same throughout it)."""
    host, port = server.address or ("127.0.0.1", 0)
    config = LoadConfig(
        host,
        port,
        connections=args.connections,
        depth=args.depth,
        duration=args.duration,
        warmup=args.warmup,
        mode=setup.mode,
    )
    usage = resource.getrusage(resource.RUSAGE_SELF)
    server_cpu = process_cpu_seconds(server.pid)
    wall = time.perf_counter()
    result = run_load(config, use_uvloop=args.generator_uvloop)
    wall = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_SELF)
    generator = (after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime) / wall
    return Sample(result, generator, (process_cpu_seconds(server.pid) - server_cpu) / wall)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--connections", type=int, default=50)
    parser.add_argument("-d", "--depth", type=int, default=10)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--loops", default="asyncio,uvloop", help="server event loops to measure (default asyncio,uvloop)"
    )
    parser.add_argument("--generator-uvloop", action="store_true", help="run the generator on uvloop")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    loops = [name for name in args.loops.split(",") if name]
    if "uvloop" in loops and not have_uvloop():
        print("uvloop is not installed: measuring asyncio only", file=sys.stderr)
        loops = [name for name in loops if name != "uvloop"]
    todo = setups(loops)
    load_before = os.getloadavg()
    servers: dict[tuple[str, str], ServerProcess] = {}
    samples: dict[int, list[Sample]] = {i: [] for i in range(len(todo))}
    try:
        for setup in todo:
            key = (setup.name, setup.loop)
            if key not in servers:
                servers[key] = ServerProcess(setup.argv)
                servers[key].start()
        for round_ in range(args.rounds):
            for i, setup in enumerate(todo):
                sample = measure(setup, servers[(setup.name, setup.loop)], args)
                samples[i].append(sample)
                print(
                    f"round {round_ + 1}/{args.rounds}  {setup.name:13} {setup.loop:8} {setup.mode:20} "
                    f"{sample.result.requests_per_second:10,.0f} req/s  errors {sample.result.errors_total}  "
                    f"cpu generator {sample.generator_cpu:4.0%} server {sample.server_cpu:4.0%}",
                    file=sys.stderr,
                )
    finally:
        for server in servers.values():
            server.stop()

    rows = []
    for i, setup in enumerate(todo):
        runs = samples[i]
        rates = [s.result.requests_per_second for s in runs]
        median = statistics.median(rates)
        best = runs[rates.index(max(rates))].result.latency_ms()
        rows.append(
            {
                "server": setup.name,
                "loop": setup.loop,
                "mode": setup.mode,
                "requests_per_s": round(median),
                "rounds": [round(r) for r in rates],
                "p50_ms": round(best["p50"], 3),
                "p99_ms": round(best["p99"], 3),
                "errors": sum(s.result.errors_total for s in runs),
                "generator_cpu": round(statistics.median(s.generator_cpu for s in runs), 2),
                "server_cpu": round(statistics.median(s.server_cpu for s in runs), 2),
                # Answers per second of server CPU: the per-request cost, robust to other load.
                "per_server_cpu_s": round(
                    statistics.median(s.result.requests_per_second / max(s.server_cpu, 1e-9) for s in runs)
                ),
                "server_us_per_request": round(
                    statistics.median(s.server_cpu / max(s.result.requests_per_second, 1e-9) for s in runs)
                    * 1e6,
                    2,
                ),
                "generator_us_per_request": round(
                    statistics.median(
                        s.generator_cpu / max(s.result.requests_per_second, 1e-9) for s in runs
                    )
                    * 1e6,
                    2,
                ),
            }
        )

    def rate(name: str, loop: str, mode: str = "pipeline", column: str = "requests_per_s") -> float:
        for row in rows:
            if (row["server"], row["loop"], row["mode"]) == (name, loop, mode):
                return float(row[column])
        return float("nan")

    ratios = {}
    for loop in loops:
        ref = rate("reference", loop)
        ratios[f"reference/echo ({loop})"] = ref / rate("echo ceiling", loop)
        per_request = rate("reference", loop, "connect-per-request")
        ratios[f"reference/connect-per-request ({loop})"] = ref / per_request
        ratios[f"reference/echo per server CPU-second ({loop})"] = rate(
            "reference", loop, column="per_server_cpu_s"
        ) / rate("echo ceiling", loop, column="per_server_cpu_s")
    if "asyncio" in loops and "uvloop" in loops:
        ratios["reference uvloop/asyncio"] = rate("reference", "uvloop") / rate("reference", "asyncio")
        ratios["echo uvloop/asyncio"] = rate("echo ceiling", "uvloop") / rate("echo ceiling", "asyncio")

    if args.json:
        print(json.dumps({"connections": args.connections, "depth": args.depth, "rows": rows,
                          "ratios": {k: round(v, 3) for k, v in ratios.items()},
                          "load_average": [load_before[0], os.getloadavg()[0]]}, indent=2))
        return 0
    print(f"\n{args.connections} connections, pipeline depth {args.depth}, {args.duration:g} s per run, "
          f"median of {args.rounds} rounds (generator: harness.load, "
          f"{'uvloop' if args.generator_uvloop else 'asyncio'})\n")
    print(f"{'server':13} {'loop':8} {'mode':20} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'gen cpu':>7} {'srv cpu':>7} {'gen us/req':>10} {'srv us/req':>10} "
          f"{'req/srv-cpu-s':>13}")
    for row in rows:
        print(f"{row['server']:13} {row['loop']:8} {row['mode']:20} {row['requests_per_s']:>10,} "
              f"{row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} {row['errors']:>6} "
              f"{row['generator_cpu']:>7.0%} {row['server_cpu']:>7.0%} "
              f"{row['generator_us_per_request']:>10.2f} {row['server_us_per_request']:>10.2f} "
              f"{row['per_server_cpu_s']:>13,}")
    print()
    for name, value in ratios.items():
        target = ""
        if name.startswith("reference/echo ("):
            target = "  (target >= 0.5)"
        elif name.startswith("reference/connect"):
            target = "  (target >= 10)"
        print(f"{name:48} {value:6.2f}x{target}")
    print(
        "\nreference/echo: requests/s with this generator on this machine; whoever is short of CPU\n"
        "  (the generator, or the CPU share other processes leave, for the echo server) sets each rate.\n"
        "per server CPU-second: answers per second of server CPU (srv us/req inverted): the cost ratio,\n"
        "  whoever is the bottleneck; the requests/s ratio with a core per server and a free generator.\n"
        "reference/connect-per-request: pipelined keep-alive connections against a new connection\n"
        "  per request (the guide's client pattern), same server, same generator."
    )
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs "
          f"(started at {load_before[0]:.2f}): other processes competing for the CPUs lower every "
          "req/s; the req/srv-cpu-s column is the less noisy one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
