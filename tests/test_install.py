"""A light install: ``pip install lpjson-harness`` brings msgspec and nothing else, and works.

The project is built and installed, with plain ``pip install`` and no extras, into one
fresh virtual environment for this module (msgspec and the build backend come from the
package index). There ``harness probe``, ``serve`` and ``request`` must work, and every
command or option that needs an extra must say in one line which one to install.
The other tests check harness/_extras.py against pyproject.toml.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness._extras import DISTRIBUTION, EXTRA_OF, MissingExtra, importing, installed, require

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
#: Installed only with an extra: none of these may come with the plain install.
OPTIONAL = ["hypothesis", "pytest", "scapy", "atheris", "uvloop"]


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower()


def _extra_requirements(extra: str) -> set[str]:
    """The names an extra installs, following the extras that name this distribution itself."""
    names: set[str] = set()
    for requirement in PYPROJECT["project"]["optional-dependencies"][extra]:
        name = _requirement_name(requirement)
        if name == DISTRIBUTION:
            inner = re.search(r"\[([^\]]*)\]", requirement)
            assert inner, requirement
            for other in inner.group(1).split(","):
                names |= _extra_requirements(other.strip())
        else:
            names.add(name)
    return names


# -- the extras table against pyproject.toml ---------------------------------------------------------------


def test_runtime_dependencies_are_msgspec_only() -> None:
    assert PYPROJECT["project"]["name"] == DISTRIBUTION
    assert [_requirement_name(r) for r in PYPROJECT["project"]["dependencies"]] == ["msgspec"]


def test_each_optional_module_is_installed_by_the_extra_its_message_names() -> None:
    for module, extra in EXTRA_OF.items():
        assert module in _extra_requirements(extra), (module, extra)
    everything = set().union(*(_extra_requirements(e) for e in PYPROJECT["project"]["optional-dependencies"]))
    assert _extra_requirements("all") == everything
    assert {"hypothesis", "pytest", "scapy", "atheris", "uvloop"} <= _extra_requirements("test")


def test_missing_extra_message_names_the_feature_module_and_extra() -> None:
    error = MissingExtra("--pcap-dir", "scapy")
    assert isinstance(error, ImportError)
    assert str(error) == "--pcap-dir needs scapy: pip install 'lpjson-harness[pcap]'"
    assert (error.name, error.extra) == ("scapy", "pcap")


def test_require_and_importing_raise_missing_extra_only_for_the_module_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import and find_spec both see "not installed"
    assert not installed("uvloop") and installed("msgspec")
    with pytest.raises(
        MissingExtra, match=r"^--loop uvloop needs uvloop: pip install 'lpjson-harness\[speed\]'$"
    ):
        require("--loop uvloop", "uvloop")
    require("the codec", "msgspec")
    with pytest.raises(MissingExtra, match=r"^x needs uvloop"), importing("x", "uvloop"):
        import uvloop  # noqa: F401
    # A module the extra's package imports being absent is a broken install: its own error.
    with pytest.raises(ModuleNotFoundError) as caught, importing("x", "uvloop"):
        raise ModuleNotFoundError("No module named 'uvloop_helper'", name="uvloop_helper")
    assert not isinstance(caught.value, MissingExtra)


# -- a fresh virtual environment with `pip install <project>` ----------------------------------------------


def _clean_env(venv: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with the project installed by ``pip install <project>``."""
    base = tmp_path_factory.mktemp("light-install")
    # A copy of what the distribution is built from, so the build leaves nothing in the tree.
    project = base / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, project / name)
    shutil.copytree(ROOT / "harness", project / "harness", ignore=shutil.ignore_patterns("__pycache__"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, capture_output=True)
    install = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", str(project)],
        env=_clean_env(venv),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, f"pip install {project} failed:\n{install.stdout}\n{install.stderr}"
    yield venv


def _run(venv: Path, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [str(venv / "bin" / argv[0]), *argv[1:]]
    env = _clean_env(venv)
    return subprocess.run(command, env=env, capture_output=True, encoding="utf-8", timeout=timeout)


def test_light_install_brings_msgspec_and_no_test_capture_fuzz_or_speed_package(light_venv: Path) -> None:
    script = (
        "import importlib.metadata as md, importlib.util as iu, json, sys\n"
        f"requires = md.requires({DISTRIBUTION!r}) or []\n"
        "print(json.dumps({'requires': [r for r in requires if 'extra ==' not in r],\n"
        f"    'present': [m for m in {OPTIONAL!r} if iu.find_spec(m) is not None],\n"
        "    'msgspec': iu.find_spec('msgspec') is not None, 'prefix': sys.prefix}))"
    )
    result = _run(light_venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert [_requirement_name(r) for r in found["requires"]] == ["msgspec"]
    assert found["present"] == []
    assert found["msgspec"] and Path(found["prefix"]) == light_venv


def test_light_install_harness_probe_passes_every_check_on_its_embedded_server(light_venv: Path) -> None:
    listed = _run(light_venv, "harness", "probe", "--list")
    assert listed.returncode == 0, (
        "harness probe --list failed in a light install (does the probe still import an extra, "
        f"e.g. hypothesis through harness.strategies?):\n{listed.stderr}"
    )
    names = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    result = _run(light_venv, "harness", "probe", "--json", "--quiet", timeout=180)
    assert result.returncode == 0, (
        f"harness probe exited {result.returncode}:\n{result.stderr}\n{result.stdout}"
    )
    report = json.loads(result.stdout)
    assert report["embedded"] is True
    assert [c["name"] for c in report["checks"]] == names
    assert [c["name"] for c in report["checks"] if c["status"] != "pass"] == []
    assert (report["passed"], report["failed"], report["skipped"]) == (len(names), 0, 0)


def test_light_install_serve_answers_harness_request(light_venv: Path) -> None:
    serve = subprocess.Popen(
        [str(light_venv / "bin" / "harness"), "serve", "--port", "0", "--log-level", "warning"],
        env={**_clean_env(light_venv), "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        encoding="utf-8",
    )
    stderr = ""
    try:
        assert serve.stdout is not None
        # The server prints its address once listening (EOF if it dies first).
        readable, _, _ = select.select([serve.stdout], [], [], 30)
        line = serve.stdout.readline() if readable else "(nothing in 30 s)"
        match = re.fullmatch(r"Listening on 127\.0\.0\.1:(\d+)\n", line)
        if match:
            port = match.group(1)
            result = _run(light_venv, "harness", "request", "127.0.0.1", port, "search", "morpheus")
            answer = "Follow the white rabbit. \N{RABBIT FACE}\n"
            assert (result.returncode, result.stdout, result.stderr) == (0, answer, "")
    finally:
        serve.terminate()
        _, stderr = serve.communicate(timeout=30)
    assert match, f"harness serve printed {line!r}; stderr: {stderr}"
    assert serve.returncode == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (
            ["pcap", "samples", "--out", "{tmp}"],
            "the pcap command needs scapy: pip install 'lpjson-harness[pcap]'",
        ),
        (
            ["pcap", "from-bytes", "-", "--out", "{tmp}/x.pcapng"],
            "the pcap command needs scapy: pip install 'lpjson-harness[pcap]'",
        ),
        (["probe", "--pcap-dir", "{tmp}"], "--pcap-dir needs scapy: pip install 'lpjson-harness[pcap]'"),
        (
            ["serve", "--port", "0", "--loop", "uvloop"],
            "--loop uvloop needs uvloop: pip install 'lpjson-harness[speed]'",
        ),
        (
            ["load", "--uvloop", "--duration", "0.1"],
            "--uvloop needs uvloop: pip install 'lpjson-harness[speed]'",
        ),
    ],
    ids=["pcap-samples", "pcap-from-bytes", "probe-pcap-dir", "serve-loop-uvloop", "load-uvloop"],
)
def test_light_install_command_without_its_extra_says_in_one_line_which_to_install(
    light_venv: Path, tmp_path: Path, argv: list[str], expected: str
) -> None:
    result = _run(light_venv, "harness", *(a.format(tmp=tmp_path) for a in argv))
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"harness: {expected}\n")
    assert list(tmp_path.iterdir()) == []  # refused before doing any work


def test_light_install_import_strategies_without_hypothesis_says_which_extra(light_venv: Path) -> None:
    script = (
        "try:\n"
        "    import harness.strategies\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('imported')"
    )
    result = _run(light_venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout
        == "MissingExtra harness.strategies needs hypothesis: pip install 'lpjson-harness[test]'\n"
    )


def test_light_install_capture_package_says_which_extra_only_for_the_writer(light_venv: Path) -> None:
    # harness.capture re-exports lazily: its dissector names work without scapy (the
    # Lua file is installed as package data), the writer's names say which extra to install.
    script = (
        "import harness.capture\n"
        "print(harness.capture.dissector_path().is_file(), harness.capture.dissector_path().name)\n"
        "for name in ('write_sessions', 'write_samples'):\n"
        "    try:\n"
        "        getattr(harness.capture, name)\n"
        "    except ImportError as exc:\n"
        "        print(type(exc).__name__, exc)\n"
        "    else:\n"
        "        print('imported', name)"
    )
    result = _run(light_venv, "python", "-c", script)
    assert result.returncode == 0, result.stderr
    missing = "MissingExtra harness.capture.writer needs scapy: pip install 'lpjson-harness[pcap]'\n"
    assert result.stdout == "True lpjson.lua\n" + missing * 2


def test_light_install_harness_wireshark_path_prints_the_installed_dissector(light_venv: Path) -> None:
    result = _run(light_venv, "harness", "wireshark", "path")
    assert result.returncode == 0, result.stderr
    path = Path(result.stdout.strip())
    assert path.is_file() and path.name == "lpjson.lua" and path.parent.name == "capture"
    assert path.is_relative_to(light_venv)
