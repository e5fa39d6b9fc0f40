"""``harness fuzz decoder MODULE:FACTORY``: finds the bug in a naive decoder in a bounded run,
nothing in a correct one; bad targets and a missing atheris are one line, exit status 2."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import harness._extras
from harness.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


def fuzz(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    shutil.copytree(TESTS / "decoders", tmp_path / "decoders", dirs_exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "harness", "fuzz", "decoder", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def test_the_shipped_dictionary_is_the_checkouts() -> None:
    from harness.commands.fuzz.decoder import dictionary

    assert dictionary().read_bytes() == (REPO / "fuzz" / "lpjson.dict").read_bytes()


@pytest.mark.parametrize(
    ("name", "rules"),
    # drops_second throws the rest of the chunk away: a second message (F3) or the start of one (F4)
    [("accepts_nan", ["H3"]), ("no_value_checks", ["H7"]), ("drops_second", ["F3", "F4"])],
)
def test_fuzzing_finds_the_bug_of_a_naive_decoder(tmp_path: Path, name: str, rules: list[str]) -> None:
    pytest.importorskip("atheris")
    done = fuzz(tmp_path, f"decoders.{name}:factory", "-runs=3000", "-seed=1")
    output = done.stdout + done.stderr  # atheris prints the exception on stdout
    assert done.returncode != 0, output[-2000:]
    assert "your decoder differs from harness's decoder" in output
    assert any(f"{rule} (docs/PROTOCOL.md#{rule.lower()})" in output for rule in rules), output[-2000:]
    artifacts = list((tmp_path / ".harness" / "fuzz" / "artifacts").rglob("crash-*"))
    assert len(artifacts) == 1


@pytest.mark.parametrize("name", ["strict", "harness_decoder"])
def test_fuzzing_finds_nothing_in_a_correct_decoder(tmp_path: Path, name: str) -> None:
    pytest.importorskip("atheris")
    done = fuzz(tmp_path, f"decoders.{name}:factory", "-runs=3000", "-seed=1")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done 3000 runs" in done.stderr
    assert not list((tmp_path / ".harness" / "fuzz" / "artifacts").rglob("crash-*"))


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("decoders", "is not MODULE:FACTORY"),
        ("no_such_module:factory", "no module 'no_such_module'"),
        ("decoders.strict:missing", "has no 'missing'"),
        ("decoders.strict:LIMIT", "is not callable"),
    ],
)
def test_a_bad_target_is_one_line_exit_2(tmp_path: Path, target: str, says: str) -> None:
    pytest.importorskip("atheris")
    done = fuzz(tmp_path, target, "-runs=1")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and says in done.stderr, done.stderr


def test_missing_atheris_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real = harness._extras.installed
    monkeypatch.setattr(harness._extras, "installed", lambda module: module != "atheris" and real(module))
    assert main(["fuzz", "decoder", "decoders.strict:factory", "-runs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "pip install 'lpjson-harness[fuzz]'" in err
