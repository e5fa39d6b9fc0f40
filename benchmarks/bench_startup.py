#!/usr/bin/env python3
"""Start-up time and memory of the ``harness`` command.

One run, each case in a fresh child process, medians of ``--runs`` runs:

- ``harness serve --port 0``: time until it prints ``Listening on``, its RSS then;
- ``harness request HOST PORT search ring`` against that server: time for the whole
  run, peak RSS (``ru_maxrss`` of the child);
- the same two with every subcommand's heavy dependencies (scapy, hypothesis, the probe,
  the load generator) imported first: what the command cost when ``harness.cli`` imported
  them while registering the subcommands (the baseline);
- floors: ``python -c pass`` and ``python -c "import harness"``.

    python benchmarks/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time

# What the subcommands' modules used to import at registration.
EAGER = (
    "import harness.capture.writer, harness.capture.samples, harness.probe.checks, "
    "harness.probe.report, harness.load; "
)
CLI = "import sys; from harness.cli import main; sys.argv[0] = 'harness'; sys.exit(main())"


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def serve(eager: bool) -> tuple[subprocess.Popen[str], float, float, tuple[str, str]]:
    code = (EAGER if eager else "") + CLI
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-c", code, "serve", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()  # "Listening on HOST:PORT" (blocks until it is printed)
    elapsed = time.perf_counter() - started
    found = re.search(r"Listening on (\S+):(\d+)", line)
    if found is None:
        server.kill()
        raise SystemExit(f"harness serve printed {line!r}")
    return server, elapsed, _rss_mb(server.pid), (found[1], found[2])


def child(argv: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one child process run to completion."""
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execv(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    elapsed = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv} failed with status {status}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, value: tuple[float, float]) -> None:
        results.setdefault(name, []).append(value)

    for _ in range(args.runs):
        add("python -c pass", child([sys.executable, "-c", "pass"]))
        add('python -c "import harness"', child([sys.executable, "-c", "import harness"]))
        for eager in (False, True):
            label = " (subcommands' dependencies imported eagerly)" if eager else ""
            server, elapsed, rss, (host, port) = serve(eager)
            try:
                add(f"harness serve --port 0{label}", (elapsed, rss))
                code = (EAGER if eager else "") + CLI
                argv = [sys.executable, "-c", code, "request", host, port, "search", "ring"]
                add(f"harness request{label}", child(argv))
            finally:
                server.terminate()
                server.wait(10)

    print(f"median of {args.runs} runs; time to 'Listening on' for serve, the whole run otherwise\n")
    print(f"{'command':70} {'ms':>7} {'RSS MB':>7}")
    medians = {}
    for name, values in results.items():
        ms = statistics.median(v[0] for v in values) * 1000
        mb = statistics.median(v[1] for v in values)
        medians[name] = (ms, mb)
        print(f"{name:70} {ms:7.0f} {mb:7.1f}")
    print()
    for command in ("harness serve --port 0", "harness request"):
        lazy = medians[command]
        eager = medians[f"{command} (subcommands' dependencies imported eagerly)"]
        print(
            f"{command}: {lazy[0] / eager[0]:.2f}x the time, {lazy[1] / eager[1]:.2f}x the RSS "
            "of the eager imports"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\n(this script's own peak RSS {peak:.1f} MB; load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
