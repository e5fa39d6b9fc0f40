#!/usr/bin/env python3
"""Live fuzzing (harness fuzz server): throughput, and time to detect the zoo's bugs.

    python benchmarks/bench_live_fuzz.py                      # bounded default (at most about 6 minutes)
    python benchmarks/bench_live_fuzz.py --only speed --seconds 20
    python benchmarks/bench_live_fuzz.py --only detect --servers all --seeds 0 1 2 3 4 --budget 60

speed: cases/s against the embedded reference server for --seconds, with and without
  feedback (hypothesis.target() toward behaviour not yet seen), and the distinct
  behaviours each reached in that time.
detect: for each buggy zoo server (a default subset of bugs no fixed probe check targets
  well; --servers all for every one), the seconds until the first failure with each
  --seeds under a fixed --budget, with and without feedback: median and max ("-" when
  not found within the budget), next to the probe's verdict and time on the same server.
  Shrinking is not counted (the report says when the failure showed first).
Each server runs as a subprocess under harness.supervise; nothing is written to the
checkout (example databases and replay files go to a temporary directory).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.apps import search_app  # noqa: E402
from harness.livefuzz.engine import fuzz  # noqa: E402
from harness.livefuzz.runner import Runner  # noqa: E402
from harness.livefuzz.target import Target, running  # noqa: E402
from harness.probe.profiles import STRICT  # noqa: E402
from tests.zoo import BUGGY, ZOO  # noqa: E402

#: Bugs no fixed probe check targets well (docs/live-fuzzing.md): the default subset.
DEFAULT_SERVERS = [
    "float_length_streams",
    "byteorder_unchecked_protocol",
    "binary_mangled_threads",
    "peer_codec_streams",
]


def speed(seconds: float) -> None:
    print(f"## cases/s against the embedded reference server ({seconds:g} s each)\n")
    print("| feedback | cases | cases/s | behaviours |")
    print("| --- | ---: | ---: | ---: |")
    for feedback in (True, False):
        with running(Target(), search_app) as (host, port, _):
            runner = Runner(host, port, search_app, STRICT)
            report = fuzz(runner, max_time=seconds, seed=0, database=None, feedback=feedback)
        stats = report.stats
        print(f"| {'on' if feedback else 'off'} | {stats.cases} | {stats.rate:.1f} | {stats.behaviours} |")
    print()


def _probe(name: str) -> str:
    from harness.probe.catalog import checks_for
    from harness.probe.runner import Target as ProbeTarget
    from harness.probe.runner import run_checks

    with running(Target(command=tuple(ZOO[name].command())), search_app) as (host, port, _):
        started = time.monotonic()
        result = run_checks(checks_for("lpjson", search_app), ProbeTarget(host, port), seed=0)
        took = time.monotonic() - started
    failed = [r.name for r in result.results if r.status == "fail"]
    verdict = f"fails {len(failed)} checks" if failed else "passes"
    return f"{verdict} ({took:.0f} s)"


def detect(servers: list[str], seeds: list[int], budget: float, with_probe: bool) -> None:
    print(f"## time to detect (budget {budget:g} s, seeds {' '.join(map(str, seeds))})\n")
    print("| server | rule | feedback on: median / max | off: median / max | probe (no process monitor) |")
    print("| --- | --- | --- | --- | --- |")
    for name in servers:
        row = [name, ZOO[name].rule or "-"]
        for feedback in (True, False):
            times: list[float] = []
            for seed in seeds:
                with (
                    tempfile.TemporaryDirectory() as scratch,
                    running(Target(command=tuple(ZOO[name].command())), search_app) as (host, port, server),
                ):
                    runner = Runner(host, port, search_app, STRICT, server=server)
                    report = fuzz(
                        runner,
                        max_time=budget,
                        seed=seed,
                        database=Path(scratch) / "db",
                        feedback=feedback,
                        shrink_time=1.0,
                    )
                times.append(report.finding.first_found_after if report.finding else float("inf"))
            found = [t for t in times if t != float("inf")]
            median = statistics.median(times)
            shown = "-" if median == float("inf") else f"{median:.1f} s"
            worst = (
                f"{max(times):.1f} s" if len(found) == len(times) else f"- ({len(found)}/{len(times)} found)"
            )
            row.append(f"{shown} / {worst}")
        row.append(_probe(name) if with_probe else "not run")
        print("| " + " | ".join(row) + " |", flush=True)
    print()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["speed", "detect"])
    parser.add_argument("--seconds", type=float, default=10.0, help="speed: seconds per mode (default 10)")
    parser.add_argument("--servers", nargs="+", default=DEFAULT_SERVERS, help="zoo servers, or 'all'")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="detect: seeds (default 0 1)")
    parser.add_argument("--budget", type=float, default=20.0, help="detect: seconds per run (default 20)")
    parser.add_argument("--no-probe", action="store_true", help="detect: leave out the probe column")
    args = parser.parse_args()
    servers = [s.name for s in BUGGY] if args.servers == ["all"] else args.servers
    unknown = [s for s in servers if s not in ZOO]
    if unknown:
        parser.error(f"no zoo server {', '.join(unknown)}")
    if args.only in (None, "speed"):
        speed(args.seconds)
    if args.only in (None, "detect"):
        detect(servers, args.seeds, args.budget, not args.no_probe)
    return 0


if __name__ == "__main__":
    sys.exit(main())
