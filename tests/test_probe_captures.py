"""Captures written by ``harness probe --pcap-dir`` open already dissected as lpjson.

A real probe run against a zoo server on a random port whose bug makes a check fail on
an invalid first header (``content-length`` 41.0, which the heuristic for other ports
would reject): the capture, read by tshark with the dissector and Wireshark's default
preferences and no ``-d``/``-o`` option, shows the failure as lpjson, the real port in the
SYN's comment, and the probe's chunks at the times they were sent and received.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dissector_helpers import assert_clean, require_tshark

from harness.capture.dissector import dissector_path
from harness.capture.tshark import Dissected, dissect, tshark_env
from harness.capture.writer import DEFAULT_SERVER_PORT, Send, Session, write_sessions
from harness.probe import CHECKS, Target, run_checks
from harness.probe.report import write_captures
from harness.probe.runner import ProbeResult

sys.path.insert(0, str(Path(__file__).parent))
from zoo import ZOO

HOST = "127.0.0.1"
CHECK = "header-content-length-float"


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ProbeResult, dict[str, Path], int]]:
    """The failing check run against float_length_streams on a random port, and its capture."""
    proc = subprocess.Popen(
        ZOO["float_length_streams"].command(HOST, "0"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith(f"Listening on {HOST}:"), line
        port = int(line.rsplit(":", 1)[1])
        assert port != DEFAULT_SERVER_PORT
        probe = run_checks([c for c in CHECKS if c.name == CHECK], Target(HOST, port))
        written = write_captures(probe, tmp_path_factory.mktemp("captures"))
        yield probe, written, port
    finally:
        proc.terminate()
        proc.wait(5)


def _fields(capture: Path, tmp_path: Path, *fields: str) -> list[list[str]]:
    exe = require_tshark()
    args = [exe, "-n", "-r", str(capture), "-X", f"lua_script:{dissector_path()}", "-T", "fields"]
    for name in fields:
        args += ["-e", name]
    out = subprocess.run(
        args, capture_output=True, timeout=60, env=tshark_env(str(tmp_path)), check=True
    ).stdout.decode()
    return [line.split("\t") for line in out.splitlines()]


def test_probe_capture_of_an_invalid_first_header_dissects_as_lpjson_with_no_option(
    probed: tuple[ProbeResult, dict[str, Path], int], tmp_path: Path
) -> None:
    probe, written, _ = probed
    assert [(r.name, r.status) for r in probe.results] == [(CHECK, "fail")]
    require_tshark()
    run = dissect(written[CHECK], prefs={})  # Wireshark's defaults, no Decode As
    assert_clean(run)
    # the first message of the offending connection is the invalid header: flagged, not ignored
    by_stream: dict[int, list[Dissected]] = {}
    for record in run.records:
        by_stream.setdefault(record.stream, []).append(record)
    offending = [records for records in by_stream.values() if records[0].violation == "invalid-header-value"]
    assert offending, run.records
    request = offending[0][0]
    assert not request.sender.endswith(f":{DEFAULT_SERVER_PORT}")
    assert "lpjson.invalid_header_value" in request.experts
    assert request.fields.get("lpjson.request") == "1"
    # the server's answer is a response linked to it
    answers = [r for r in offending[0] if r.sender.endswith(f":{DEFAULT_SERVER_PORT}")]
    assert answers and answers[0].kind == "message"
    assert answers[0].fields.get("lpjson.request_in") == str(request.frame)
    rows = _fields(written[CHECK], tmp_path, "_ws.col.Protocol")
    assert ["LPJSON"] in rows


def test_probe_capture_keeps_the_real_port_in_a_comment(
    probed: tuple[ProbeResult, dict[str, Path], int], tmp_path: Path
) -> None:
    _, written, port = probed
    rows = _fields(written[CHECK], tmp_path, "tcp.flags.syn", "tcp.flags.ack", "tcp.dstport", "frame.comment")
    # flags print as 1/0 (tshark 4.0) or True/False (4.4)
    syns = [row for row in rows if row[0] in ("1", "True") and row[1] in ("0", "False")]
    assert syns
    for _, _, dstport, comment in syns:
        assert dstport == str(DEFAULT_SERVER_PORT)
        assert f"server {HOST}:{port}, shown as port {DEFAULT_SERVER_PORT}" in comment


def test_probe_capture_timestamps_are_the_real_chunk_times(
    probed: tuple[ProbeResult, dict[str, Path], int], tmp_path: Path
) -> None:
    probe, written, _ = probed
    transcripts = probe.results[0].transcripts
    assert len(transcripts) >= 2  # the check's connections overlap in time
    rows = _fields(written[CHECK], tmp_path, "tcp.stream", "frame.time_epoch", "tcp.len", "frame.comment")
    origin = min(t.chunks[0].time for t in transcripts if t.chunks)
    data = [row for row in rows if int(row[2]) > 0]
    start = min(float(row[1]) for row in data)
    for stream, transcript in enumerate(transcripts):
        # one data segment per chunk (each chunk is far below the MSS)
        firsts = [float(row[1]) for row in data if row[0] == str(stream)]
        assert len(firsts) == len(transcript.chunks), (stream, rows)
        for chunk, when in zip(transcript.chunks, firsts, strict=True):
            assert abs((when - start) - (chunk.time - origin)) < 1e-5, (chunk, when - start)


def test_writer_shows_a_two_second_silence_as_two_seconds(tmp_path: Path) -> None:
    from harness import Message

    request = Message.from_json({"action": "search", "value": "ring"}).encode()
    answer = Message.from_json({"result": "In the caves beneath the Misty Mountains. 💍"}).encode()
    capture = tmp_path / "silence.pcapng"
    write_sessions(
        capture,
        [
            Session(
                [Send("client", request, at_us=0), Send("server", answer, at_us=2_000_000)], server_port=40001
            )
        ],
    )
    rows = _fields(capture, tmp_path, "frame.time_relative", "tcp.len", "lpjson.time", "_ws.col.Info")
    data = [(float(t), info, since) for t, length, since, info in rows if int(length) > 0]
    assert len(data) == 2
    assert abs(data[1][0] - data[0][0] - 2.0) < 1e-6
    # the answer names its request and the time since it
    assert data[1][1].startswith("Response: result ")
    assert abs(float(data[1][2]) - 2.0) < 1e-6
