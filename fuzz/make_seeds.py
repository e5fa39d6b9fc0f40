#!/usr/bin/env python3
"""Write the seed corpus (harness.fuzzing.seed_corpus) to fuzz/seeds/.

The violation seeds (violation-*, pair-then-*, bad-content-*) are drawn with the
generators of the rows of harness.violations.VIOLATIONS, the one table of violations.

python fuzz/make_seeds.py           # rewrite fuzz/seeds/ (removes files it no longer makes)
python fuzz/make_seeds.py --check   # exit 1 if fuzz/seeds/ differs from what it would write
"""

import argparse
import sys
import warnings
from pathlib import Path

from harness.fuzzing import DRAWN_SEED_PREFIXES, seed_corpus

SEEDS = Path(__file__).resolve().parent / "seeds"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument("--dir", type=Path, default=SEEDS, help="where the seeds go (default: %(default)s)")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Hypothesis warnings from drawing examples outside a test
        corpus = seed_corpus()
    existing = {p.name: p.read_bytes() for p in args.dir.glob("*")} if args.dir.is_dir() else {}
    if args.check:
        stale = sorted(set(existing) ^ set(corpus)) + sorted(
            n for n in set(existing) & set(corpus) if existing[n] != corpus[n]
        )
        failing = [
            n for n in stale if not (n in existing and n in corpus and n.startswith(DRAWN_SEED_PREFIXES))
        ]
        for name in stale:
            print(f"differs: {name}{'' if name in failing else ' (drawn by Hypothesis)'}")
        print(f"{len(corpus)} seeds, {len(stale)} differ, {len(failing)} of them fixed seeds or names")
        return 1 if failing else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in set(existing) - set(corpus):
        (args.dir / name).unlink()
    for name, data in sorted(corpus.items()):
        if existing.get(name) != data:
            (args.dir / name).write_bytes(data)
    print(f"wrote {len(corpus)} seeds ({sum(map(len, corpus.values()))} bytes) to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
