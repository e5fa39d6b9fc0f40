#!/usr/bin/env python3
"""Write each fuzz target's seed corpus zip and dictionary into OUT (the build's $OUT).

For every ``fuzz/fuzz_*.py`` target, OSS-Fuzz's names: ``<target>_seed_corpus.zip`` (every
file of ``fuzz/seeds/``, flat, in name order, with a fixed timestamp so that the same
seeds give the same bytes) and ``<target>.dict`` (a copy of ``fuzz/lpjson.dict``).
Called by .clusterfuzzlite/build.sh; tests/test_clusterfuzzlite.py runs it the same way.

    python3 .clusterfuzzlite/make_corpus.py OUT
"""

from __future__ import annotations

import argparse
import shutil
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FUZZ = REPO / "fuzz"
SEEDS = FUZZ / "seeds"
DICTIONARY = FUZZ / "lpjson.dict"
#: Zip entries' timestamp: fixed, so that a rebuild of the same seeds is byte for byte equal.
EPOCH = (1980, 1, 1, 0, 0, 0)


def targets(fuzz_dir: Path = FUZZ) -> list[str]:
    """The fuzz targets: the names of ``fuzz/fuzz_*.py``, as build.sh's loop finds them."""
    return sorted(path.stem for path in fuzz_dir.glob("fuzz_*.py"))


def write_zip(seeds: list[Path], path: Path) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for seed in seeds:
            info = zipfile.ZipInfo(seed.name, date_time=EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, seed.read_bytes())


def make_corpus(out: Path, seeds_dir: Path = SEEDS, dictionary: Path = DICTIONARY) -> list[Path]:
    """Write every target's zip and dictionary into ``out``; the paths written."""
    seeds = sorted(p for p in seeds_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    if not seeds:
        raise FileNotFoundError(f"no seeds in {seeds_dir}")
    if not dictionary.is_file():
        raise FileNotFoundError(f"no dictionary at {dictionary}")
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for target in targets():
        corpus = out / f"{target}_seed_corpus.zip"
        write_zip(seeds, corpus)
        words = out / f"{target}.dict"
        shutil.copyfile(dictionary, words)
        written += [corpus, words]
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, help="the output directory ($OUT)")
    parser.add_argument("--seeds", type=Path, default=SEEDS, help="seed directory (default: fuzz/seeds)")
    args = parser.parse_args(argv)
    try:
        written = make_corpus(args.out, args.seeds)
    except OSError as exc:
        print(f"make_corpus.py: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
