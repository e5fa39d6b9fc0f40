"""Short real fuzzing runs of both fuzzers: they must find nothing and leave the checkout clean.

Each run is a subprocess with a bounded -runs (or -max_total_time) and a timeout, started
from a temporary directory. atheris is part of the ``fuzz`` extra (Python < 3.14).
"""

from __future__ import annotations

import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 14):  # pragma: no cover - atheris 3.0 supports Python 3.11-3.13
    pytest.skip("atheris is not available for this Python", allow_module_level=True)

import atheris  # noqa: F401  (the fuzz extra must be installed: fail, don't skip, if it is not)

REPO = Path(__file__).resolve().parent.parent
FUZZERS = {"decoder": REPO / "fuzz" / "fuzz_decoder.py", "server": REPO / "fuzz" / "fuzz_server.py"}
RUNS = 20_000


def git_status() -> str:
    # Everything a run writes by default goes under fuzz/ (work/, artifacts/, the -fork wrapper),
    # so that is where to look; the rest of the checkout may be edited by others meanwhile.
    return subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", "fuzz"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


def fuzz(script: Path, args: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def checkout_unchanged() -> object:
    before = git_status()
    yield None
    assert git_status() == before, "a fuzzing run changed the checkout"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["--structure", "--bytes"])
@pytest.mark.parametrize("target", sorted(FUZZERS))
def test_short_fuzzing_run_finds_nothing(
    target: str, mode: str, tmp_path: Path, checkout_unchanged: object
) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    runs = RUNS if mode == "--structure" else RUNS // 2
    result = fuzz(
        FUZZERS[target],
        [
            mode,
            f"-runs={runs}",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(REPO / "fuzz" / "seeds"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"Done {runs} runs" in result.stderr
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-"))]
    assert any(corpus.iterdir()), "libFuzzer kept no new input in the first corpus directory"


def test_default_run_uses_work_and_artifact_dirs_and_replays_a_file(
    tmp_path: Path, checkout_unchanged: object
) -> None:
    result = fuzz(FUZZERS["decoder"], ["-runs=300", "-seed=2"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert f"files found in {REPO / 'fuzz' / 'work' / 'decoder'}" in result.stderr
    assert f"files found in {REPO / 'fuzz' / 'seeds'}" in result.stderr
    assert "Dictionary: " in result.stderr
    seed = REPO / "fuzz" / "seeds" / "vector-request-morpheus"
    replay = fuzz(FUZZERS["server"], [str(seed)], tmp_path)
    assert replay.returncode == 0, replay.stderr[-4000:]
    assert f"Running: {seed}" in replay.stderr
    assert "files found" not in replay.stderr  # a file argument: no corpus directories added


def test_fork_mode_runs_children_through_the_wrapper(tmp_path: Path, checkout_unchanged: object) -> None:
    """-fork re-runs argv[0] through sh: it must work without an activated virtual environment."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = "/usr/bin:/bin"  # no python3 with atheris on PATH
    result = subprocess.run(
        [
            sys.executable,
            str(FUZZERS["decoder"]),
            "-fork=2",
            "-max_total_time=6",
            "-seed=3",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
            str(REPO / "fuzz" / "seeds"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "-fork=2: fuzzing in separate process(s)" in result.stderr
    assert "oom/timeout/crash: 0/0/0" in result.stderr
    assert "log from the inner process" not in result.stderr  # printed when a child fails (sh: exit 126)


CODEC = {"harness.frames", "harness.header", "harness.decoder", "harness.message", "harness.strictjson"}
UNDER_TEST = {"decoder": CODEC, "server": CODEC | {"harness.connection", "harness.apps"}}


@pytest.mark.parametrize("target", sorted(FUZZERS))
def test_fuzzers_instrument_the_code_under_test_and_none_of_the_checks(target: str, tmp_path: Path) -> None:
    replay = fuzz(FUZZERS[target], [str(REPO / "fuzz" / "seeds" / "vector-request-morpheus")], tmp_path)
    assert replay.returncode == 0, replay.stderr[-4000:]
    instrumented = set(re.findall(r"^INFO: Instrumenting (\S+)$", replay.stderr, re.MULTILINE))
    assert instrumented >= UNDER_TEST[target], instrumented
    assert not {m for m in instrumented if m.startswith("harness.fuzzing")}, instrumented


def test_the_modules_left_uninstrumented_are_the_whole_fuzzing_package() -> None:
    sys.path.insert(0, str(REPO / "fuzz"))
    try:
        import runner
    finally:
        sys.path.remove(str(REPO / "fuzz"))
    import harness.fuzzing

    package = {"harness.fuzzing"} | {
        m.name for m in pkgutil.walk_packages(harness.fuzzing.__path__, "harness.fuzzing.")
    }
    assert set(runner.check_modules()) == package


_TRACED = """
import sys
sys.path.insert(0, {fuzz!r})
import runner
runner.import_instrumented({modules!r})
from harness.fuzzing import reference
import harness.frames, harness.strictjson
def traced(function):
    return "_trace_branch" in function.__code__.co_names
print(traced(harness.frames.FrameReader._parse), traced(harness.strictjson.loads_strict),
      traced(reference.FrameReader._parse), traced(reference.loads_strict), traced(reference.check_header))
"""


def test_the_invariants_reference_codec_is_left_uninstrumented() -> None:
    # What fuzz_decoder.py does: the codec is instrumented, then harness.fuzzing is imported;
    # the reference readings of the invariants run in copies that atheris never traced.
    code = _TRACED.format(fuzz=str(REPO / "fuzz"), modules=sorted(CODEC))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["True", "True", "False", "False", "False"]
