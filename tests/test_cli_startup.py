"""The ``harness`` command starts without its subcommands' heavy dependencies.

Each command module imports what it needs (hypothesis, scapy, the load generator)
when its command runs; ``register()`` only builds the parser. A constant a parser
needs is repeated in the command module, and checked here against its source.
"""

from __future__ import annotations

import json
import subprocess
import sys

import harness.capture.writer
import harness.commands.load
import harness.commands.pcap
import harness.load
from harness._extras import EXTRA_OF

HEAVY = [
    "hypothesis",
    "scapy",
    "harness.load",
    "harness.capture.writer",
    "harness.capture.samples",
    "harness.probe",
    "harness.strategies",
]


def _modules_after(code: str) -> list[str]:
    probe = f"import sys, json\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    command = [sys.executable, "-c", probe]
    out = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return list(json.loads(out.stdout.splitlines()[-1]))


def test_cli_parser_imports_no_heavy_dependency() -> None:
    loaded = _modules_after("from harness.cli import build_parser\nbuild_parser()")
    assert "harness.commands.probe" in loaded and "harness.commands.pcap" in loaded
    assert [name for name in loaded if name.split(".")[0] in HEAVY or name in HEAVY] == []


def test_cli_serve_parses_without_heavy_dependencies() -> None:
    loaded = _modules_after(
        "from harness.cli import build_parser\n"
        "args = build_parser().parse_args(['serve', '--port', '0'])\n"
        "assert args.func.__module__ == 'harness.commands.serve'"
    )
    assert [name for name in loaded if name.split(".")[0] in ("hypothesis", "scapy")] == []


#: Modules that only an extra installs (harness/_extras.py), and pytest.
EXTRAS_ONLY = {*EXTRA_OF, "pytest"}


def test_serve_and_request_import_no_module_of_an_extra() -> None:
    loaded = _modules_after(
        "from harness.cli import build_parser\n"
        "import harness.commands.serve, harness.commands.request, harness.server, harness.client"
    )
    assert [name for name in loaded if name.split(".")[0] in EXTRAS_ONLY] == []


def test_probe_imports_no_capture_code_unless_captures_are_asked_for() -> None:
    # What `harness probe` runs without --pcap-dir: the checks, the runner, the report, the
    # embedded server. (Hypothesis is the probe's other extra to lose: tests/test_install.py
    # runs the probe where it is not installed.)
    code = "import harness.commands.probe, harness.probe.runner, harness.probe.report, harness.server"
    loaded = _modules_after(code)
    capture = [name for name in loaded if name == "harness.capture" or name.startswith("harness.capture.")]
    assert [name for name in loaded if name.split(".")[0] == "scapy"] + capture == []


def test_capture_package_imports_scapy_only_for_the_writer_and_samples() -> None:
    # The dissector and the tshark reader are re-exported by harness.capture without scapy:
    # `harness wireshark` and a tshark run work in a light install.
    loaded = _modules_after(
        "import harness.capture\n"
        "harness.capture.dissector_path(), harness.capture.dissect, harness.capture.find_tshark()"
    )
    assert "harness.capture.dissector" in loaded and "harness.capture.tshark" in loaded
    assert [name for name in loaded if name.split(".")[0] == "scapy" or name in HEAVY] == []


def test_cli_constants_repeated_in_command_modules_agree_with_their_source() -> None:
    assert harness.commands.pcap.DEFAULT_SERVER_PORT == harness.capture.writer.DEFAULT_SERVER_PORT
    assert harness.commands.load.MODES == harness.load.MODES
