"""The probe's pieces: its malformed inputs, its splittings, its transport and its runner."""

from __future__ import annotations

import errno
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from harness import Decoder, Message, ReferenceServer, decode_all
from harness.apps import search_app
from harness.errors import ContentError
from harness.probe import checks, wire
from harness.probe.checks import (
    BAD_CONTENTS,
    CHECKS,
    VIOLATION_PAYLOADS,
    Check,
    CheckFailed,
    difference,
    find_check,
    random_splittings,
)
from harness.probe.report import CAPTURE_LIMIT, transcript_session
from harness.probe.runner import Target, run_check, run_checks
from harness.probe.wire import Chunk, End, Recorder, Transcript
from harness.strategies import VIOLATION_KINDS


@pytest.fixture(scope="module")
def reference() -> Iterator[Target]:
    with ReferenceServer() as server:
        host, port = server.address
        yield Target(host, port, embedded=True)


def test_check_names_are_unique_and_cover_the_issue() -> None:
    names = [check.name for check in CHECKS]
    assert len(names) == len(set(names)) >= 15
    for kind in VIOLATION_KINDS:
        assert f"violation-{kind}" in names
    for name in (
        "search-morpheus",
        "search-ring",
        "search-dog",
        "search-miss",
        "binary",
        "invalid-action",
        "split-one-byte",
        "split-prefix",
        "split-header",
        "split-content",
        "split-random",
        "pipeline-2",
        "pipeline-100",
        "concurrent-connections",
        "concurrent-interleaved",
        "half-close",
        "slow-sender",
        "never-reads",
        "huge-length",
    ):
        assert name in names


@pytest.mark.parametrize("kind", sorted(VIOLATION_KINDS))
def test_violation_payload_raises_its_own_violation_class(kind: str) -> None:
    data = VIOLATION_PAYLOADS[kind][0]
    decoder = Decoder()
    with pytest.raises(VIOLATION_KINDS[kind]):
        decoder.feed(data)
        decoder.close()


@pytest.mark.parametrize("name", sorted(BAD_CONTENTS))
def test_bad_content_is_well_framed_but_unreadable(name: str) -> None:
    message = BAD_CONTENTS[name][0]
    (decoded,) = decode_all(message.encode())
    assert decoded == message
    with pytest.raises(ContentError):
        search_app(decoded)


def test_random_splittings_are_deterministic_and_cover_each_request() -> None:
    first = list(random_splittings(7))
    assert first == list(random_splittings(7))
    assert [c for _, c in first] != [c for _, c in random_splittings(8)]
    inside_prefix = inside_header = 0
    for request, chunks in first:
        raw = request.encode()
        assert b"".join(chunks) == raw
        assert len(chunks) >= 2
        header_end = 2 + int.from_bytes(raw[:2], "big")
        cut = len(chunks[0])
        inside_prefix += cut == 1
        inside_header += any(2 < at < header_end for at in _cut_points(chunks))
    assert inside_prefix and inside_header


def _cut_points(chunks: list[bytes]) -> list[int]:
    points, at = [], 0
    for chunk in chunks[:-1]:
        at += len(chunk)
        points.append(at)
    return points


def test_difference_ignores_byteorder_and_json_spacing_but_not_content() -> None:
    want = Message.from_json({"result": "x"}, byteorder="little")
    assert difference(Message.from_json({"result": "x"}, byteorder="big"), want) is None
    spaced = Message.from_bytes(b'{"result":"x"}', content_type="text/json", encoding="utf-8")
    assert difference(spaced, want) is None
    problem = difference(Message.from_json({"result": "y"}), want)
    assert problem is not None and '"y"' in problem
    problem = difference(Message.from_bytes(b"x"), want)
    assert problem is not None and "content-type" in problem


def test_expected_answers_come_from_the_reference_app(
    reference: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_check(find_check("search-morpheus"), reference).status == "pass"

    def other_app(request: Message) -> Message:
        return Message.from_json({"result": "something else"})

    monkeypatch.setattr(checks, "search_app", other_app)
    result = run_check(find_check("search-morpheus"), reference)
    assert result.status == "fail"
    assert "something else" in result.detail


def test_wire_connect_closes_the_socket_when_the_connection_is_gone_at_once(
    reference: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[socket.socket] = []

    class ResetAtOnce(socket.socket):
        def getpeername(self) -> Any:
            raise OSError(errno.ENOTCONN, "Transport endpoint is not connected")

    def create_connection(address: tuple[str, int], timeout: float) -> socket.socket:
        sock = ResetAtOnce()
        sock.settimeout(timeout)
        sock.connect(address)
        made.append(sock)
        return sock

    monkeypatch.setattr(wire.socket, "create_connection", create_connection)
    recorder = Recorder(reference.host, reference.port, time.monotonic() + 5.0)
    with pytest.raises(OSError):
        recorder.connect("test")
    (sock,) = made
    assert sock.fileno() == -1, "the socket was left open"


def test_wire_records_each_send_and_recv_with_its_real_boundaries(reference: Target) -> None:
    request = Message.from_json({"action": "search", "value": "ring"})
    raw = request.encode()
    chunks = [raw[:1], raw[1:40], raw[40:]]
    recorder = Recorder(reference.host, reference.port, time.monotonic() + 5.0)
    conn = recorder.connect("test")
    assert conn.send_chunks(chunks, pause=0.01)
    reading = conn.read_messages(1, 3.0)
    conn.close()
    assert reading.end is End.COMPLETE and reading.messages == [search_app(request)]
    (transcript,) = recorder.transcripts
    assert [c.data for c in transcript.chunks if c.outgoing] == chunks
    assert transcript.received == search_app(request).encode()
    times = [c.time for c in transcript.chunks]
    assert times == sorted(times)


def test_a_check_that_never_returns_is_cut_off_at_its_bound(reference: Target) -> None:
    release = threading.Event()

    def stuck(ctx: checks.CheckContext) -> str:
        release.wait(30.0)
        return "never"

    try:
        started = time.monotonic()
        result = run_check(Check("stuck", "blocks", 0.2, stuck, "test"), reference)
        elapsed = time.monotonic() - started
    finally:
        release.set()
    assert result.status == "fail" and result.severity == "unsafe"
    assert "did not finish" in result.detail
    assert elapsed < 3.0


def test_a_check_that_crashes_does_not_stop_the_next(reference: Target) -> None:
    def broken(ctx: checks.CheckContext) -> str:
        raise ZeroDivisionError("probe bug")

    def fine(ctx: checks.CheckContext) -> str:
        ctx.connect().close()
        return "ok"

    def spec(ctx: checks.CheckContext) -> str:
        raise CheckFailed("wrong answer")

    probe = run_checks(
        [
            Check("broken", "", 1, broken, "test"),
            Check("spec", "", 1, spec, "test"),
            Check("fine", "", 1, fine, "test"),
        ],
        reference,
    )
    statuses = [(r.name, r.status, r.severity) for r in probe.results]
    assert statuses == [("broken", "fail", "spec"), ("spec", "fail", "spec"), ("fine", "pass", None)]
    assert "ZeroDivisionError" in probe.results[0].detail
    assert probe.passed == 1 and probe.failed == 2 and not probe.ok


def test_capture_of_a_huge_connection_is_cut_at_the_limit() -> None:
    transcript = Transcript("flood", chunks=[Chunk(True, bytes(300_000), i * 0.001) for i in range(8)])
    transcript.chunks.append(Chunk(False, b"late answer", 1.0))
    session = transcript_session(transcript, "never-reads", 65432)
    sent = sum(len(s.data) for s in session.sends)
    assert CAPTURE_LIMIT <= sent < CAPTURE_LIMIT + 300_000
    assert all(s.direction == "client" for s in session.sends)
    assert "truncated" in session.comment and session.close is None


def test_small_connection_is_captured_whole_in_its_real_chunks() -> None:
    chunks = [Chunk(True, b"ab", 0.0), Chunk(True, b"c", 0.01), Chunk(False, b"xyz", 0.02)]
    transcript = Transcript("c", chunks=chunks, server_closed=True)
    session = transcript_session(transcript, "pipeline-2", 40000)
    assert [(s.direction, s.data) for s in session.sends] == [
        ("client", b"ab"),
        ("client", b"c"),
        ("server", b"xyz"),
    ]
    assert session.close == "server" and session.server_port == 40000 and not session.ipv6
    assert transcript_session(transcript, "pipeline-2", 40000, ipv6=True).ipv6
