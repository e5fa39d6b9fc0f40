"""The ClusterFuzzLite layout (.clusterfuzzlite/, .github/workflows/cflite_*.yml): what runs here.

No Docker engine here, so the image is not built. What build.sh does is run piece by piece:
its seed corpus and dictionary step (.clusterfuzzlite/make_corpus.py, the same command),
and, where PyInstaller is installed, a target packaged the way OSS-Fuzz's
compile_python_fuzzer packages it (``pyinstaller --onefile --name <target>.pkg`` plus
build.sh's arguments; here ``--onedir``) running inputs as ClusterFuzzLite runs them.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CFLITE = REPO / ".clusterfuzzlite"
WORKFLOWS = REPO / ".github" / "workflows"
SEEDS = REPO / "fuzz" / "seeds"
DICTIONARY = REPO / "fuzz" / "lpjson.dict"
TARGETS = ["fuzz_decoder", "fuzz_server"]


def _build_sh_commands() -> list[list[str]]:
    """build.sh's commands, one per line (comments and the shebang dropped)."""
    lines = (CFLITE / "build.sh").read_text().splitlines()
    return [shlex.split(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _make_corpus(out: Path) -> subprocess.CompletedProcess[str]:
    """build.sh's corpus step, run as build.sh runs it (from the checkout, OUT as its argument)."""
    (command,) = [c for c in _build_sh_commands() if any("make_corpus.py" in part for part in c)]
    assert command == ["python3", ".clusterfuzzlite/make_corpus.py", "$OUT"]
    return subprocess.run(
        [sys.executable, command[1], str(out)], cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_layout_follows_the_oss_fuzz_python_convention() -> None:
    dockerfile = (CFLITE / "Dockerfile").read_text()
    assert re.search(r"^FROM gcr\.io/oss-fuzz-base/base-builder-python\s*$", dockerfile, re.M)
    assert "COPY .clusterfuzzlite/build.sh $SRC/" in dockerfile
    assert re.search(r"^WORKDIR \$SRC/lpjson-harness$", dockerfile, re.M)
    project = (CFLITE / "project.yaml").read_text()
    assert re.search(r"^language: python$", project, re.M)
    assert (CFLITE / "build.sh").stat().st_mode & 0o111, "build.sh must be executable"
    commands = _build_sh_commands()
    assert (CFLITE / "build.sh").read_text().startswith("#!/bin/bash -eu\n")
    # every fuzz/fuzz_*.py is packaged with compile_python_fuzzer
    assert ["for", "fuzzer", "in", "fuzz/fuzz_*.py;", "do"] in commands
    assert ["compile_python_fuzzer", "$fuzzer", "--paths", "$SRC/lpjson-harness"] in commands
    assert sorted(p.stem for p in (REPO / "fuzz").glob("fuzz_*.py")) == TARGETS


@pytest.mark.parametrize(
    ("workflow", "mode"), [("cflite_pr.yml", "code-change"), ("cflite_batch.yml", "batch")]
)
def test_workflows_build_python_fuzzers_and_run_them_in_their_mode(workflow: str, mode: str) -> None:
    text = (WORKFLOWS / workflow).read_text()
    assert "\t" not in text
    uses = re.findall(r"^\s*uses: (\S+)$", text, re.M)
    assert uses == [
        "google/clusterfuzzlite/actions/build_fuzzers@v1",
        "google/clusterfuzzlite/actions/run_fuzzers@v1",
    ]
    assert re.search(r"^\s+language: python$", text, re.M)
    assert re.search(rf"^\s+mode: '{mode}'$", text, re.M)
    assert re.search(r"^\s+fuzz-seconds: \d+$", text, re.M)
    assert re.search(r"^permissions: read-all$", text, re.M)


def test_make_corpus_writes_each_targets_seed_zip_and_dictionary(tmp_path: Path) -> None:
    done = _make_corpus(tmp_path / "out")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{t}_seed_corpus.zip" for t in TARGETS] + [f"{t}.dict" for t in TARGETS]
    )
    seeds = {p.name: p.read_bytes() for p in SEEDS.iterdir() if p.is_file()}
    for target in TARGETS:
        with zipfile.ZipFile(out / f"{target}_seed_corpus.zip") as archive:
            assert archive.testzip() is None
            assert {name: archive.read(name) for name in archive.namelist()} == seeds
        assert (out / f"{target}.dict").read_bytes() == DICTIONARY.read_bytes()
    # the same seeds give the same bytes (a rebuild changes nothing)
    again = _make_corpus(tmp_path / "again")
    assert again.returncode == 0
    for target in TARGETS:
        name = f"{target}_seed_corpus.zip"
        assert (out / name).read_bytes() == (tmp_path / "again" / name).read_bytes()


def test_make_corpus_without_seeds_says_so_in_one_line(tmp_path: Path) -> None:
    def make(seeds: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(CFLITE / "make_corpus.py"), str(tmp_path / "out"), "--seeds", str(seeds)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = make(tmp_path / "none")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "make_corpus.py:" in done.stderr
    (tmp_path / "empty").mkdir()
    done = make(tmp_path / "empty")
    assert done.returncode == 2 and "no seeds" in done.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_runner_adds_its_defaults_in_the_checkout_and_nothing_when_packaged(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sys.path.insert(0, str(REPO / "fuzz"))
    try:
        import runner
    finally:
        sys.path.remove(str(REPO / "fuzz"))
    monkeypatch.setattr(runner, "WORK", tmp_path / "work")
    monkeypatch.setattr(runner, "ARTIFACTS", tmp_path / "artifacts")
    script = REPO / "fuzz" / "fuzz_decoder.py"
    argv = ["fuzz_decoder", "-runs=10"]
    checkout = runner.build_argv("decoder", script, argv)
    assert any(a.startswith("-dict=") for a in checkout) and str(runner.SEEDS) in checkout
    monkeypatch.setattr(sys, "frozen", True, raising=False)  # as in a PyInstaller package
    assert runner.build_argv("decoder", script, argv) == argv
    cflite = ["fuzz_decoder", "-rss_limit_mb=2560", "-timeout=25", "-dict=/out/fuzz_decoder.dict", "/corpus"]
    assert runner.build_argv("decoder", script, cflite) == cflite


needs_pyinstaller = pytest.mark.skipif(
    importlib.util.find_spec("PyInstaller") is None or importlib.util.find_spec("atheris") is None,
    reason="PyInstaller (pip install pyinstaller) and atheris are needed to package a target",
)


@pytest.mark.slow
@needs_pyinstaller
def test_packaged_target_runs_inputs_as_clusterfuzzlite_runs_them(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    assert _make_corpus(out).returncode == 0
    # compile_python_fuzzer fuzz/fuzz_decoder.py --paths $SRC/lpjson-harness, minus the
    # sanitizer wrapper script (its LD_PRELOAD library exists only in the OSS-Fuzz image),
    # and --onedir for its --onefile: the same analysis, frozen imports and bootloader, without
    # compressing ~90 MB of shared libraries into one file (40 of the build's 60 s here).
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--distpath",
            str(out),
            f"--workpath={work}",
            "--specpath",
            str(work),
            "--onedir",
            "--name",
            "fuzz_decoder.pkg",
            "--paths",
            str(REPO),
            str(REPO / "fuzz" / "fuzz_decoder.py"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    package = out / "fuzz_decoder.pkg" / "fuzz_decoder.pkg"
    corpus = tmp_path / "corpus"
    with zipfile.ZipFile(out / "fuzz_decoder_seed_corpus.zip") as archive:
        archive.extractall(corpus)
    fuzz = subprocess.run(
        [
            str(package),
            "-runs=500",
            "-seed=1",
            f"-dict={out / 'fuzz_decoder.dict'}",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert fuzz.returncode == 0, fuzz.stderr[-3000:]
    assert "Done 500 runs" in fuzz.stderr
    cov = re.search(r"cov: (\d+)", fuzz.stderr)
    assert cov and int(cov.group(1)) > 50, "the packaged target must be coverage-instrumented"
    assert not list(tmp_path.glob("crash-*"))
    # reproduce one input, as ClusterFuzzLite does with a crash it found
    seed = sorted(corpus.iterdir())[0]
    replay = subprocess.run(
        [str(package), "-runs=10", str(seed)], capture_output=True, text=True, timeout=120
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert f"Running: {seed}" in replay.stderr
