"""Replay every committed fuzz input (seeds and regressions) through the fuzzers' invariants.

No atheris here: the same invariant functions the fuzzers call run on each file.
A file in fuzz/regressions/ is an input a fuzzer once failed on; it stays there
with the fix so that the bug cannot come back.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from harness import strategies as lst
from harness.fuzzing import (
    DRAWN_SEED_PREFIXES,
    FuzzInput,
    check_decoder_input,
    check_server_input,
    decode_outcome,
    seed_corpus,
)

FUZZ = Path(__file__).resolve().parent.parent / "fuzz"
SEEDS = FUZZ / "seeds"
REGRESSIONS = FUZZ / "regressions"


def _inputs(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file()) if directory.is_dir() else []


SEED_FILES = _inputs(SEEDS)
REGRESSION_FILES = _inputs(REGRESSIONS)
ALL_FILES = SEED_FILES + REGRESSION_FILES


@pytest.mark.parametrize("path", ALL_FILES, ids=[f"{p.parent.name}/{p.name}" for p in ALL_FILES])
def test_committed_input_passes_the_decoder_invariants(path: Path) -> None:
    check_decoder_input(path.read_bytes())


@pytest.mark.parametrize("path", ALL_FILES, ids=[f"{p.parent.name}/{p.name}" for p in ALL_FILES])
def test_committed_input_passes_the_server_invariants(path: Path) -> None:
    check_server_input(path.read_bytes())


def test_seed_corpus_is_small_and_covers_every_violation_class() -> None:
    assert 50 <= len(SEED_FILES) < 200
    outcomes = set()
    for path in SEED_FILES:
        fuzz = FuzzInput.decode(path.read_bytes())
        outcome = decode_outcome(fuzz.payload, fuzz.max_content_length)
        outcomes.add(type(outcome.error) if outcome.error else None)
    assert outcomes >= {None, *lst.VIOLATION_KINDS.values()}


def test_seed_generator_makes_the_committed_kinds_of_seed() -> None:
    """fuzz/make_seeds.py writes seed_corpus(); Hypothesis-drawn seeds may change with its version."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        corpus = seed_corpus()
    assert set(corpus) == {p.name for p in SEED_FILES}
    for name, data in corpus.items():
        if not name.startswith(DRAWN_SEED_PREFIXES):
            assert (SEEDS / name).read_bytes() == data, name
        check_decoder_input(data)
