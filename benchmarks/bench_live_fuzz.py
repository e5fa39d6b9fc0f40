#!/usr/bin/env python3
"""Live fuzzing (harness fuzz server): throughput, and time to detect the zoo's bugs.

    python benchmarks/bench_live_fuzz.py                      # bounded default (at most about 6 minutes)
    python benchmarks/bench_live_fuzz.py --only speed --seconds 20
    python benchmarks/bench_live_fuzz.py --only detect --servers all --seeds 0 1 2 3 4 --budget 60
    python benchmarks/bench_live_fuzz.py --clean --budget 300   # no false positives (must find nothing)
    python benchmarks/bench_live_fuzz.py --clean --budget 300 --servers serve correct_threads

speed: cases/s against the embedded reference server for --seconds, with and without
  feedback (hypothesis.target() toward behaviour not yet seen), and the distinct
  behaviours each reached in that time.
detect: for each buggy zoo server (a default subset of bugs no fixed probe check targets
  well; --servers all for every one), the seconds until the first failure with each
  --seeds under a fixed --budget, with and without feedback: median and max ("-" when
  not found within the budget), next to the probe's verdict and time on the same server.
  Shrinking is not counted (the report says when the failure showed first).
clean: each correct zoo server and `harness serve` fuzzed for --budget seconds (seed 0):
  every finding is printed with its shrunk program; there must be none (exit 1 otherwise).
Both run the sentinels harness fuzz server runs by default (--no-sentinels: none); a case
number marked "s" is a sentinel's finding, after that many cases.
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
from harness.livefuzz.engine import ROUND_EXAMPLES, fuzz  # noqa: E402
from harness.livefuzz.runner import Runner  # noqa: E402
from harness.livefuzz.sentinels import DEFAULT_IDLE_TIMEOUT, Sentinels  # noqa: E402
from harness.livefuzz.target import Target, running  # noqa: E402
from harness.probe.profiles import STRICT  # noqa: E402
from tests.zoo import BUGGY, CORRECT, ZOO  # noqa: E402

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


def _sentinels(runner: Runner, budget: float, on: bool) -> Sentinels | None:
    """The sentinels harness fuzz server runs by default (idle timeout 30 s; memory with a command)."""
    if not on:
        return None
    return Sentinels(
        runner, idle_timeout=DEFAULT_IDLE_TIMEOUT, memory=runner.server is not None, max_time=budget
    )


def clean(budget: float, only: list[str] | None = None, sentinels: bool = True) -> int:
    """Fuzz every correct server (or those named in ``only``; ``serve`` is harness serve) for
    ``budget`` seconds; the number of findings (must be 0)."""
    from harness.livefuzz.program import describe

    print(f"## correct servers, {budget:g} s each (seed 0): findings must be none\n")
    commands = {s.name: tuple(s.command()) for s in CORRECT}
    commands["harness serve"] = (
        sys.executable,
        "-m",
        "harness",
        "serve",
        "--host",
        "{host}",
        "--port",
        "{port}",
    )
    if only:
        wanted = {"harness serve" if n == "serve" else n for n in only}
        commands = {n: c for n, c in commands.items() if n in wanted}
    findings = 0
    for name, command in commands.items():
        with (
            tempfile.TemporaryDirectory() as scratch,
            running(Target(command=command), search_app) as (host, port, server),
        ):
            runner = Runner(host, port, search_app, STRICT, server=server)
            report = fuzz(
                runner,
                max_time=budget,
                seed=0,
                database=Path(scratch) / "db",
                shrink_time=30.0,
                sentinels=_sentinels(runner, budget, sentinels),
            )
        stats = report.stats
        verdict = "nothing found"
        if report.finding is not None:
            findings += 1
            verdict = f"FINDING: {report.finding.result.failure}"
        notes = "".join(f"; {note}" for note in report.notes)
        print(f"- {name}: {stats.cases} cases in {stats.seconds:.0f} s, {verdict}{notes}", flush=True)
        if report.finding is not None:
            for number, step in enumerate(report.finding.program, 1):
                print(f"    {number}. {describe(step)}")
    print(f"\n{findings} finding(s)")
    return findings


def detect(
    servers: list[str],
    seeds: list[int],
    budget: float,
    with_probe: bool,
    modes: tuple[bool, ...],
    round_examples: int | None = ROUND_EXAMPLES,
    sentinels: bool = True,
) -> None:
    rounds = f"rounds of {round_examples} cases" if round_examples else "one round"
    print(f"## time to detect (budget {budget:g} s, seeds {' '.join(map(str, seeds))}, {rounds})\n")
    heads = [f"feedback {'on' if m else 'off'}: median / max (case)" for m in modes]
    print("| server | rule | " + " | ".join(heads) + " | probe (no process monitor) |")
    print("| --- | --- | " + " | ".join("---" for _ in modes) + " | --- |")
    for name in servers:
        row = [name, ZOO[name].rule or "-"]
        for feedback in modes:
            cases: list[str] = []
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
                        round_examples=round_examples,
                        sentinels=_sentinels(runner, budget, sentinels),
                    )
                times.append(report.finding.first_found_after if report.finding else float("inf"))
                if report.finding:
                    mark = "s" if report.finding.sentinel else ""  # found by a sentinel, after that case
                    cases.append(f"{report.finding.first_found_case}{mark}")
            found = [t for t in times if t != float("inf")]
            median = statistics.median(times)
            shown = "-" if median == float("inf") else f"{median:.1f} s"
            worst = (
                f"{max(times):.1f} s" if len(found) == len(times) else f"- ({len(found)}/{len(times)} found)"
            )
            row.append(f"{shown} / {worst} ({'/'.join(map(str, cases)) or '-'})")
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
    parser.add_argument(
        "--feedback", choices=["both", "on", "off"], default="both", help="detect: which modes (default both)"
    )
    parser.add_argument(
        "--round-examples",
        type=int,
        default=ROUND_EXAMPLES,
        help=f"detect: cases per Hypothesis run (default {ROUND_EXAMPLES}; 0: one endless run)",
    )
    parser.add_argument(
        "--no-sentinels", action="store_true", help="no sentinels (idle connections, memory programs)"
    )
    parser.add_argument(
        "--clean", action="store_true", help="only fuzz the correct servers for --budget s each (no findings)"
    )
    args = parser.parse_args()
    if args.clean:  # --servers: correct zoo servers, or serve for harness serve (default: all of them)
        picked = None if args.servers is DEFAULT_SERVERS or args.servers == ["all"] else args.servers
        unknown = [s for s in picked or () if s != "serve" and s not in {c.name for c in CORRECT}]
        if unknown:
            parser.error(f"no correct zoo server {', '.join(unknown)}")
        return 1 if clean(args.budget, picked, not args.no_sentinels) else 0
    servers = [s.name for s in BUGGY] if args.servers == ["all"] else args.servers
    unknown = [s for s in servers if s not in ZOO]
    if unknown:
        parser.error(f"no zoo server {', '.join(unknown)}")
    if args.only in (None, "speed"):
        speed(args.seconds)
    if args.only in (None, "detect"):
        modes = {"both": (True, False), "on": (True,), "off": (False,)}[args.feedback]
        detect(
            servers,
            args.seeds,
            args.budget,
            not args.no_probe,
            modes,
            args.round_examples or None,
            not args.no_sentinels,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
