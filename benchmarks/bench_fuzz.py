#!/usr/bin/env python3
"""Fuzzer throughput, where the time goes, and structure-aware vs byte mutation.

    python benchmarks/bench_fuzz.py                 # everything (about 10 minutes on 2 cores)
    python benchmarks/bench_fuzz.py --only speed    # exec/s of both fuzzers vs a trivial target
    python benchmarks/bench_fuzz.py --only cost     # per-invariant cost, in process
    python benchmarks/bench_fuzz.py --only coverage --runs 200000 --seeds 1 2 3
    python benchmarks/bench_fuzz.py --only coverage --seconds 60 --target server
    python benchmarks/bench_fuzz.py --only trace --seeds 1 2   # what atheris's tracing costs per input

speed: each fuzzer in each mode for --speed-runs inputs (-print_final_stats=1), next to
  atheris on a trivial target (json.loads) measured in the same run: the ratio is
  what the invariants and the mutator cost.
cost: the decoder invariants one at a time on a fixed corpus (the seeds plus
  structure-mutated variants), uninstrumented, as a ratio of a plain decode.
coverage: libFuzzer's final cov: (edges) and ft: (features) for --bytes and
  --structure at the same -runs and -seed, each from an empty working corpus plus
  the committed seeds; prints the Markdown table docs/fuzzing.md quotes. With --seconds,
  at the same -max_total_time instead (same CPU budget, if the machine is idle).
trace: atheris's _trace_branch and _trace_cmp timed inside a fuzzing process; then, per
  seed (the first two --seeds), a --trace-runs run of fuzz_decoder.py builds a corpus, a
  20,000-input run resumed from it records every input it executes, and those inputs are
  replayed in order: the traces one makes (the stream fed whole, the split run, the rest)
  and, with nothing instrumented, the CPU time of its invariants; plus one structure-aware
  mutation of each corpus input.
All runs happen in temporary directories: the checkout is not written to.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
SEEDS = FUZZ / "seeds"
TARGETS = {"decoder": FUZZ / "fuzz_decoder.py", "server": FUZZ / "fuzz_server.py"}
_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)/")
_EXECS = re.compile(r"stat::average_exec_per_sec:\s+(\d+)")

TRIVIAL_TARGET = """
import sys, json, atheris

def target(data):
    try:
        json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        pass

atheris.Setup(sys.argv, target)
atheris.Fuzz()
"""


def run_fuzzer(script: Path, args: list[str], cwd: Path, timeout: float = 3600) -> dict[str, int]:
    """Run one libFuzzer process; return its final cov, ft, corpus size, runs and exec/s."""
    cmd = [sys.executable, str(script), *args, "-print_final_stats=1"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    log = proc.stderr
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}:\n{log[-3000:]}")
    execs = _EXECS.search(log)
    done = _DONE.search(log)
    result = {"exec_s": int(execs.group(1)) if execs else 0, "cpu_ms": round(cpu * 1000)}
    if done:
        result.update(
            runs=int(done.group(1)), cov=int(done.group(2)), ft=int(done.group(3)), corp=int(done.group(4))
        )
    return result


def fuzz_args(tmp: Path, mode: str, budget: str, seed: int) -> list[str]:
    """``budget``: ``-runs=N`` or ``-max_total_time=S``."""
    work = Path(tempfile.mkdtemp(prefix=f"corpus-{mode}-{seed}-", dir=tmp))
    return [f"--{mode}", budget, f"-seed={seed}", f"-artifact_prefix={tmp}/", str(work), str(SEEDS)]


# -- speed -------------------------------------------------------------------------


def timed_execs(script: Path, args: list[str], runs: int, cwd: Path) -> tuple[float, float, int]:
    """Inputs per second over ``runs`` inputs, net of start-up (a -runs=0 run of the same command).

    Returns (per wall-clock second, per CPU second of the fuzzer process, libFuzzer's own
    ``average_exec_per_sec``): on a busy machine the second one is what one dedicated core
    would do. libFuzzer's own figure divides by whole seconds, start-up included, so it reads
    low on short runs.
    """
    start = time.monotonic()
    startup_cpu = run_fuzzer(script, [*args, "-runs=0"], cwd)["cpu_ms"] / 1000
    startup = time.monotonic() - start
    start = time.monotonic()
    result = run_fuzzer(script, [*args, f"-runs={runs}"], cwd)
    wall = time.monotonic() - start
    cpu = result["cpu_ms"] / 1000
    return runs / max(wall - startup, 1e-3), runs / max(cpu - startup_cpu, 1e-3), result["exec_s"]


def bench_speed(runs: int) -> None:
    print(f"== exec/s over {runs} inputs (one process, net of start-up; per wall second and per CPU second)")
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as name:
        tmp = Path(name)
        trivial = tmp / "trivial.py"
        trivial.write_text(TRIVIAL_TARGET)
        corpus = Path(tempfile.mkdtemp(dir=tmp))
        base = timed_execs(trivial, ["-seed=1", str(corpus), str(SEEDS)], runs * 5, tmp)
        print(f"{'':36} {'wall':>8} {'cpu':>8} {'libFuzzer':>9}  ratio (cpu)")
        print(f"{'baseline: atheris on json.loads':36} {base[0]:>8.0f} {base[1]:>8.0f} {base[2]:>9}  1.000x")
        for target, script in TARGETS.items():
            for mode in ("bytes", "structure"):
                corpus = Path(tempfile.mkdtemp(dir=tmp))
                args = [f"--{mode}", "-seed=1", f"-artifact_prefix={tmp}/", str(corpus), str(SEEDS)]
                wall, cpu, libfuzzer = timed_execs(script, args, runs, tmp)
                print(
                    f"{f'fuzz_{target}.py --{mode}':36} {wall:>8.0f} {cpu:>8.0f} {libfuzzer:>9}  "
                    f"{cpu / base[1]:.3f}x"
                )


# -- cost ----------------------------------------------------------------------------


def _corpus(n_mutants: int) -> list[bytes]:
    from harness.fuzzing import StructureMutator

    seeds = [p.read_bytes() for p in sorted(SEEDS.iterdir())]
    mutator = StructureMutator()
    rng = random.Random(1)
    corpus = list(seeds)
    for i in range(n_mutants):
        corpus.append(mutator.mutate(rng.choice(corpus), 4096, i))
    return corpus


def _time(fn: Callable[[bytes], object], corpus: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for data in corpus:
            fn(data)
        best = min(best, time.process_time() - start)
    return best / len(corpus) * 1e6


def bench_cost(n_mutants: int, repeat: int) -> None:
    from harness import Decoder, ProtocolError
    from harness import fuzzing as fz

    corpus = _corpus(n_mutants)
    inputs = [fz.FuzzInput.decode(d) for d in corpus]
    by_data = dict(zip(corpus, inputs, strict=True))
    print(
        f"== per-input cost of the decoder invariants ({len(corpus)} inputs, "
        f"uninstrumented, best of {repeat})"
    )

    def plain(data: bytes) -> None:
        fuzz = by_data[data]
        decoder = Decoder(fuzz.max_content_length)
        try:
            decoder.feed(fuzz.payload)
            decoder.close()
        except ProtocolError:
            pass

    def whole(data: bytes) -> None:
        fuzz = by_data[data]
        fz.decode_outcome(fuzz.payload, fuzz.max_content_length)

    def whole_split(data: bytes) -> None:
        fuzz = by_data[data]
        fz.decode_outcome(fuzz.payload, fuzz.max_content_length)
        stepwise = bool(fuzz.flags & fz.FLAG_ALTERNATE)
        chunks = fz.split(fuzz.payload, fuzz.cuts)
        if len(chunks) > 1 or stepwise:
            fz.decode_split(chunks, fuzz.max_content_length, stepwise)

    def fresh_memo(data: bytes) -> None:
        fuzz = by_data[data]
        stepwise = bool(fuzz.flags & fz.FLAG_ALTERNATE)
        fz.check_decoder(
            fuzz.payload, fuzz.cuts, max_content_length=fuzz.max_content_length, stepwise=stepwise
        )

    mutator = fz.StructureMutator()
    rows = [
        ("feed() + close(), no checks (baseline)", plain),
        ("+ bookkeeping, close() and failed-state checks", whole),
        ("+ the split run", whole_split),
        ("all invariants, each input on its own (check_decoder)", fresh_memo),
        ("all invariants, warm memo (check_decoder_input)", fz.check_decoder_input),
        ("check_server_input", fz.check_server_input),
        ("StructureMutator.mutate (for comparison)", lambda d: mutator.mutate(d, 4096, len(d))),
    ]
    base = 0.0
    for label, fn in rows:
        cost = _time(fn, corpus, repeat)
        base = base or cost
        print(f"{label:56} {cost:9.1f} us/input  {cost / base:6.2f}x")
    print(
        "(inside the fuzzer, atheris's instrumentation of the codec makes the decoder's own runs about "
        "2.6x as costly: see Throughput in docs/fuzzing.md)"
    )


# -- coverage ------------------------------------------------------------------------------


def bench_coverage(target: str, budget: str, seeds: list[int]) -> None:
    print(f"== fuzz_{target}.py: cov/ft after {budget}, seeds {seeds}")
    results: dict[str, list[dict[str, int]]] = {"bytes": [], "structure": []}
    with tempfile.TemporaryDirectory(prefix="bench-fuzz-") as name:
        tmp = Path(name)
        for seed in seeds:
            for mode in results:
                start = time.monotonic()
                result = run_fuzzer(TARGETS[target], fuzz_args(tmp, mode, budget, seed), tmp)
                result["seconds"] = round(time.monotonic() - start)
                results[mode].append(result)
                print(f"  seed {seed} --{mode:9}: {result}", flush=True)
    print()

    def cpu_execs(row: dict[str, int]) -> float:
        return row["runs"] / (row["cpu_ms"] / 1000)  # start-up included: a slight underestimate

    print(f"| fuzz_{target}.py, {budget} | seed | cov | ft | corpus | exec/s (wall) | exec/s (CPU) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for mode, rows in results.items():
        for seed, row in zip(seeds, rows, strict=True):
            print(
                f"| --{mode} | {seed} | {row['cov']} | {row['ft']} | {row['corp']} | {row['exec_s']} "
                f"| {cpu_execs(row):.0f} |"
            )
    for mode, rows in results.items():
        cov = statistics.mean(r["cov"] for r in rows)
        ft = statistics.mean(r["ft"] for r in rows)
        execs = statistics.mean(r["exec_s"] for r in rows)
        cpu = statistics.mean(cpu_execs(r) for r in rows)
        print(f"| **--{mode}, mean** | | **{cov:.0f}** | **{ft:.0f}** | | {execs:.0f} | {cpu:.0f} |")
    base_cov = statistics.mean(r["cov"] for r in results["bytes"])
    base_ft = statistics.mean(r["ft"] for r in results["bytes"])
    cov = statistics.mean(r["cov"] for r in results["structure"])
    ft = statistics.mean(r["ft"] for r in results["structure"])
    print(f"\nstructure / bytes: cov {cov / base_cov:.2f}x, ft {ft / base_ft:.2f}x")


#: Timed inside a fuzzing process (after atheris.Setup, as the instrumented code calls them).
TRACE_COST_TARGET = """
import sys, time, atheris

def target(data):
    n = 1_000_000
    branch, compare = atheris._trace_branch, atheris._trace_cmp
    t0 = time.perf_counter()
    for _ in range(n):
        branch(5)
    t1 = time.perf_counter()
    for _ in range(n):
        pass
    t2 = time.perf_counter()
    for _ in range(n):
        compare(5, 7, 2, 5, False)
    t3 = time.perf_counter()
    empty = t2 - t1
    print(f"TRACE {((t1 - t0) - empty) / n * 1e9:.0f} {((t3 - t2) - empty) / n * 1e9:.0f}", flush=True)
    sys.exit(0)

atheris.Setup(sys.argv + ["-runs=1"], target)
atheris.Fuzz()
"""

#: Runs the decoder fuzzer as fuzz_decoder.py does and records every input it executes, in
#: order (length-prefixed, unbuffered: libFuzzer leaves by exit(), past Python's buffers).
RECORD_SCRIPT = """
import struct, sys
sys.path.insert(0, sys.argv.pop(1))
record = open(sys.argv.pop(1), "wb", buffering=0)
import runner
import fuzz_decoder  # instruments the code under test, as the fuzzer does
from harness.fuzzing import check_decoder_input
def target(data):
    record.write(struct.pack(">I", len(data)) + data)
    check_decoder_input(data)
runner.main("decoder", "the lpjson decoder", target, fuzz_decoder.__file__)
"""

#: Reads the inputs RECORD_SCRIPT wrote.
READ_RECORD = """
import struct
def recorded(path):
    blob, pos, inputs = open(path, "rb").read(), 0, []
    while pos + 4 <= len(blob):
        (n,) = struct.unpack_from(">I", blob, pos)
        inputs.append(blob[pos + 4 : pos + 4 + n])
        pos += 4 + n
    return inputs
"""

#: Replays the recorded inputs through the decoder fuzzer's target in their order (the memo
#: filling as in the run), atheris's trace functions swapped for counters; prints the traces
#: per input, in the whole-stream run, the split run and the rest.
TRACE_COUNT_SCRIPT = (
    READ_RECORD
    + """
import collections, operator, sys
sys.path.insert(0, sys.argv[1])
import atheris
import fuzz_decoder  # instruments the code under test, as the fuzzer does
import harness.fuzzing.decoder as checks
from harness.fuzzing import check_decoder_input
inputs = recorded(sys.argv[2])
phase = ["rest"]
def during(fn, name):
    def wrapped(*args, **kwargs):
        phase[0] = name
        try:
            return fn(*args, **kwargs)
        finally:
            phase[0] = "rest"
    return wrapped
checks.decode_outcome = during(checks.decode_outcome, "whole")
checks.decode_split = during(checks.decode_split, "split")
branches, compares = collections.Counter(), collections.Counter()
def branch(index):
    branches[phase[0]] += 1
OPERATORS = (operator.lt, operator.le, operator.eq, operator.ne, operator.gt, operator.ge)
def compare(a, b, op, index, is_const):
    compares[phase[0]] += 1
    return OPERATORS[op](a, b)
atheris._trace_branch, atheris._trace_cmp = branch, compare
for data in inputs:
    check_decoder_input(data)
n = len(inputs)
print("COUNT", n, *(f"{c[k] / n:.1f}" for c in (branches, compares) for k in ("whole", "split", "rest")))
"""
)

#: The recorded inputs with nothing instrumented, in their order (CPU µs per input of the
#: invariants), and one structure-aware mutation of each corpus input (what libFuzzer mutates).
UNTRACED_SCRIPT = (
    READ_RECORD
    + """
import os, sys, time
from harness.fuzzing import StructureMutator, check_decoder_input
inputs = recorded(sys.argv[1])
start = time.process_time()
for data in inputs:
    check_decoder_input(data)
check = (time.process_time() - start) / len(inputs) * 1e6
corpus = [open(os.path.join(sys.argv[2], f), "rb").read() for f in sorted(os.listdir(sys.argv[2]))]
mutator = StructureMutator()
times = []
for _ in range(3):
    start = time.process_time()
    for i, data in enumerate(corpus):
        mutator.mutate(data, 4096, i)
    times.append(time.process_time() - start)
print("UNTRACED", f"{check:.0f}", f"{min(times) / len(corpus) * 1e6:.0f}")
"""
)


def _python(script: Path, *args: str) -> str:
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=1200, check=True
    ).stdout


def bench_trace(runs: int, seeds: list[int], recorded: int = 20_000) -> None:
    """What the decoder fuzzer spends per input it executes: atheris's tracing (per call, and
    the calls an input makes) and, with nothing instrumented, the invariants and the mutation."""
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {}
        for name, text in [
            ("cost", TRACE_COST_TARGET),
            ("record", RECORD_SCRIPT),
            ("count", TRACE_COUNT_SCRIPT),
            ("untraced", UNTRACED_SCRIPT),
        ]:
            scripts[name] = Path(tmp) / f"{name}.py"
            scripts[name].write_text(text)
        out = subprocess.run(
            [sys.executable, str(scripts["cost"])], capture_output=True, text=True, timeout=600, check=False
        ).stdout
        match = re.search(r"TRACE (\d+) (\d+)", out)
        if match is None:
            raise RuntimeError(f"the trace-cost target printed nothing: {out[-500:]}")
        branch_ns, compare_ns = int(match.group(1)), int(match.group(2))
        print(
            f"atheris in a fuzzing process: _trace_branch {branch_ns} ns a call, _trace_cmp {compare_ns} ns\n"
        )
        print(
            f"Per input executed, over {recorded:,} inputs of a run resumed from the corpus of a first run:"
        )
        print(
            "| corpus of | inputs replayed | block traces (whole / split / rest) | comparison traces "
            "| tracing | invariants, untraced | one mutation |"
        )
        print("| --- | ---: | --- | --- | ---: | ---: | ---: |")
        for seed in seeds:
            corpus = Path(tmp) / f"corpus-{seed}"
            corpus.mkdir()
            run_fuzzer(
                TARGETS["decoder"],
                [f"-runs={runs}", f"-seed={seed}", f"-artifact_prefix={tmp}/", str(corpus), str(SEEDS)],
                Path(tmp),
            )
            frozen = Path(tmp) / f"frozen-{seed}"  # the first run's corpus, for the mutation timing
            shutil.copytree(corpus, frozen)
            record = Path(tmp) / f"inputs-{seed}.bin"
            proc = subprocess.run(
                [sys.executable, str(scripts["record"]), str(FUZZ), str(record), f"-runs={recorded}",
                 f"-seed={seed}", f"-artifact_prefix={tmp}/", str(corpus), str(SEEDS)],
                cwd=tmp, capture_output=True, text=True, timeout=1200, check=False,
            )  # fmt: skip
            if proc.returncode != 0:
                raise RuntimeError(f"the recording run failed:\n{proc.stderr[-3000:]}")
            fields = _python(scripts["count"], str(FUZZ), str(record)).split("COUNT", 1)[1].split()
            n, (bw, bs, br, cw, cs, cr) = int(fields[0]), map(float, fields[1:])
            blocks, compares = bw + bs + br, cw + cs + cr
            micros = (blocks * branch_ns + compares * compare_ns) / 1000
            check_us, mutate_us = (
                _python(scripts["untraced"], str(record), str(frozen)).split("UNTRACED", 1)[1].split()
            )
            print(
                f"| -runs={runs} -seed={seed} | {n:,} | {blocks:.0f} ({bw:.0f} / {bs:.0f} / {br:.0f}) | "
                f"{compares:.0f} ({cw:.0f} / {cs:.0f} / {cr:.0f}) | {micros:.0f} µs | {check_us} µs "
                f"| {mutate_us} µs |"
            )
    print(
        "\n(10,000 exec/s leaves 100 µs per input for everything: libFuzzer, the mutation, the "
        "invariants and their tracing.)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["speed", "cost", "coverage", "trace"], action="append")
    parser.add_argument("--runs", type=int, default=200_000, help="-runs for the coverage comparison")
    parser.add_argument("--seconds", type=int, help="coverage: compare at -max_total_time instead of -runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument(
        "--target", choices=sorted(TARGETS), action="append", help="coverage: which fuzzer(s)"
    )
    parser.add_argument("--speed-runs", type=int, default=30_000)
    parser.add_argument(
        "--trace-runs", type=int, default=100_000, help="trace: -runs of each corpus-building run"
    )
    parser.add_argument("--mutants", type=int, default=400, help="cost: structure-mutated inputs added")
    args = parser.parse_args()
    parts = args.only or ["speed", "cost", "coverage", "trace"]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    warnings.simplefilter("ignore")
    if "speed" in parts:
        bench_speed(args.speed_runs)
    if "cost" in parts:
        bench_cost(args.mutants, repeat=3)
    if "trace" in parts:
        bench_trace(args.trace_runs, args.seeds[:2])
    if "coverage" in parts:
        for target in args.target or ["decoder"]:
            budget = f"-max_total_time={args.seconds}" if args.seconds else f"-runs={args.runs}"
            bench_coverage(target, budget, args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
