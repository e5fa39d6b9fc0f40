"""The sample set and the ``harness pcap`` / ``harness wireshark`` commands."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from dissector_helpers import require_tshark
from scapy.layers.inet import TCP
from scapy.utils import PcapNgReader

from harness.capture.dissector import dissector_path, not_loaded
from harness.capture.samples import samples, write_samples
from harness.capture.tshark import TsharkError, dissect
from harness.cli import main
from harness.decoder import Decoder
from harness.errors import ProtocolError
from harness.strategies import VIOLATION_KINDS
from harness.violations import content_violations, stream_violations

PCAPS = Path(__file__).resolve().parent.parent / "pcaps"


@pytest.mark.skipif(
    sys.byteorder != "little", reason="the committed samples come from a little-endian server"
)
def test_samples_regenerate_byte_identical_to_committed_pcaps(tmp_path: Path) -> None:
    write_samples(tmp_path)
    fresh = sorted(p.name for p in tmp_path.iterdir())
    committed = sorted(p.name for p in PCAPS.iterdir())
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (PCAPS / name).read_bytes(), (
            f"{name} differs from a fresh generation"
        )


def test_samples_cover_the_issue_list() -> None:
    sample_list = samples()
    assert len(sample_list) >= 10
    by_name = {s.name: s for s in sample_list}
    assert by_name["13-violations"].violations == [row.code for row in stream_violations()]
    assert set(by_name["13-violations"].violations) == set(VIOLATION_KINDS)
    assert by_name["14-bad-content"].violations == [row.code for row in content_violations()]
    names = " ".join(s.name for s in sample_list)
    for needed in (
        "morpheus",
        "ring",
        "dog",
        "miss",
        "binary",
        "invalid-action",
        "pipelined",
        "three-in-one",
        "split-prefix",
        "split-header",
        "split-content",
        "large",
        "violations",
        "retransmission",
        "out-of-order",
        "ipv6",
        "other-port",
    ):
        assert needed in names
    readme = (PCAPS / "README.md").read_text(encoding="utf-8")
    for sample in sample_list:
        assert sample.filename in readme


def test_violation_samples_raise_their_own_error_in_the_codec() -> None:
    (sample,) = [s for s in samples() if s.name == "13-violations"]
    for session, row in zip(sample.sessions, stream_violations(), strict=True):
        data = session.stream("client")
        assert data.endswith(row.example.data)
        decoder = Decoder()
        with pytest.raises(ProtocolError) as caught:
            decoder.feed(data)
            decoder.close()
        assert caught.value.code == row.code


def test_cli_pcap_samples_writes_the_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["pcap", "samples", "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.pcapng"))) == len(samples())
    assert "README.md written" in capsys.readouterr().out


def _client_payloads(path: Path) -> list[bytes]:
    with PcapNgReader(str(path)) as reader:
        frames = list(reader)
    client = frames[0][TCP].sport
    return [bytes(f[TCP].payload) for f in frames if f[TCP].sport == client and bytes(f[TCP].payload)]


def test_cli_from_bytes_cuts_the_stream_where_asked(tmp_path: Path) -> None:
    stream = tmp_path / "crash.bin"
    stream.write_bytes(b'\x00\x05{"a":1}tail')
    out = tmp_path / "crash.pcapng"
    assert main(["pcap", "from-bytes", str(stream), "--out", str(out), "--cuts", "1,3"]) == 0
    assert _client_payloads(out) == [b"\x00", b"\x05{", b'"a":1}tail']
    assert main(["pcap", "from-bytes", str(stream), "--out", str(out), "--chunk", "5"]) == 0
    assert _client_payloads(out) == [b'\x00\x05{"a', b'":1}t', b"ail"]
    assert main(["pcap", "from-bytes", str(stream), "--out", str(out)]) == 0
    assert _client_payloads(out) == [stream.read_bytes()]


def test_cli_from_bytes_respond_adds_the_reference_servers_answer(tmp_path: Path) -> None:
    from harness.message import Message

    stream = tmp_path / "req.bin"
    stream.write_bytes(Message.from_json({"action": "search", "value": "ring"}).encode())
    out = tmp_path / "req.pcapng"
    assert main(["pcap", "from-bytes", str(stream), "--out", str(out), "--respond", "--ipv6"]) == 0
    with PcapNgReader(str(out)) as reader:
        payloads = [bytes(f[TCP].payload) for f in reader]
    assert any(b"Misty Mountains" in p for p in payloads)


def test_cli_from_bytes_rejects_bad_cuts_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = tmp_path / "s.bin"
    stream.write_bytes(b"abc")
    assert main(["pcap", "from-bytes", str(stream), "--out", str(tmp_path / "o"), "--cuts", "9"]) == 2
    assert main(["pcap", "from-bytes", str(stream), "--out", str(tmp_path / "o"), "--cuts", "x"]) == 2
    assert main(["pcap", "from-bytes", str(tmp_path / "none"), "--out", str(tmp_path / "o")]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["pcap", "from-bytes", str(stream), "--out", str(tmp_path / "no" / "dir" / "o")]) == 1
    assert "cannot write" in capsys.readouterr().err


def test_cli_wireshark_path_names_the_dissector(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["wireshark", "path"]) == 0
    path = Path(capsys.readouterr().out.strip())
    assert path == dissector_path() and path.name == "lpjson.lua" and path.is_file()


def test_cli_wireshark_install_copies_and_says_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "plugins"
    assert main(["wireshark", "install", "--dir", str(target)]) == 0
    assert (target / "lpjson.lua").read_bytes() == dissector_path().read_bytes()
    assert str(target / "lpjson.lua") in capsys.readouterr().out


def test_cli_wireshark_install_finds_the_personal_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["wireshark", "install"]) == 0
    assert (tmp_path / ".local/lib/wireshark/plugins/lpjson.lua").is_file()
    assert ".local/lib/wireshark/plugins/lpjson.lua" in capsys.readouterr().out


def test_cli_wireshark_install_checks_that_tshark_loads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_tshark()
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(tmp_path / "config"))
    assert main(["wireshark", "install"]) == 0
    out = capsys.readouterr()
    assert "tshark loads it" in out.out and not out.err


#: A tshark that runs no Lua script (as Wireshark 4.4 run as root): it knows only TCP, and
#: reads every capture as having no packet.
NO_LUA_TSHARK = """#!/bin/sh
if [ "$1" = "-G" ]; then printf 'Transmission Control Protocol\\tTCP\\ttcp\\n'; else echo '[]'; fi
"""


@pytest.mark.parametrize(
    ("euid", "says"), [(0, "runs no Lua script as root"), (1000, "is it built with Lua?")]
)
def test_a_tshark_that_runs_no_lua_is_told_apart_from_a_capture_without_lpjson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], euid: int, says: str
) -> None:
    fake = tmp_path / "tshark"
    fake.write_text(NO_LUA_TSHARK)
    fake.chmod(0o755)
    monkeypatch.setattr(os, "geteuid", lambda: euid)
    assert says in (not_loaded(str(fake), str(dissector_path())) or "")
    with pytest.raises(TsharkError, match=says.replace("?", r"\?")):
        dissect(PCAPS / "01-search-morpheus.pcapng", tshark=str(fake))
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WIRESHARK_CONFIG_DIR", str(tmp_path / "config"))
    not_loaded.cache_clear()
    assert main(["wireshark", "install"]) == 0  # installed all the same, with the reason on stderr
    assert says in capsys.readouterr().err
