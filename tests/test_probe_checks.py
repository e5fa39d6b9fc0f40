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
    CHECKS,
    Check,
    CheckFailed,
    difference,
    find_check,
    random_splittings,
)
from harness.probe.report import CAPTURE_LIMIT, transcript_session
from harness.probe.runner import Target, run_check, run_checks
from harness.probe.wire import Chunk, End, Recorder, Transcript
from harness.spec import RULES
from harness.strategies import VIOLATION_KINDS
from harness.violations import VIOLATIONS, content_violations


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
    for code in VIOLATIONS:
        assert f"violation-{code}" in names
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
    data = VIOLATIONS[kind].example.data
    decoder = Decoder()
    with pytest.raises(VIOLATION_KINDS[kind]):
        decoder.feed(data)
        decoder.close()


@pytest.mark.parametrize("code", [row.code for row in content_violations()])
def test_bad_content_is_well_framed_but_unreadable(code: str) -> None:
    message = VIOLATIONS[code].example.message
    assert message is not None
    (decoded,) = decode_all(VIOLATIONS[code].example.data)
    assert decoded == message
    with pytest.raises(ContentError):
        search_app(decoded)


@pytest.mark.parametrize("code", list(VIOLATIONS))
def test_violation_check_sends_the_canonical_example_of_its_row(code: str, reference: Target) -> None:
    result = run_check(find_check(f"violation-{code}"), reference)
    assert result.status == "pass", result.detail
    (offender,) = [t for t in result.transcripts if t.label == "offender"]
    assert offender.sent == VIOLATIONS[code].example.data
    assert offender.server_closed == VIOLATIONS[code].closes_connection


def test_every_check_names_a_rule_of_the_spec() -> None:
    for check in CHECKS:
        assert check.rule in RULES, check.name
    for code, row in VIOLATIONS.items():
        assert find_check(f"violation-{code}").rule == row.rule
    with pytest.raises(ValueError, match="rule 'Z9'"):
        Check("bogus", "", 1, lambda ctx: "", "test", "Z9")


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

    monkeypatch.setattr(checks.context, "search_app", other_app)  # what CheckContext.respond asks
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
        result = run_check(Check("stuck", "blocks", 0.2, stuck, "test", "L2"), reference)
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
            Check("broken", "", 1, broken, "test", "S1"),
            Check("spec", "", 1, spec, "test", "A1"),
            Check("fine", "", 1, fine, "test", "S1"),
        ],
        reference,
    )
    statuses = [(r.name, r.status, r.severity) for r in probe.results]
    assert statuses == [("broken", "fail", "spec"), ("spec", "fail", "spec"), ("fine", "pass", None)]
    assert "ZeroDivisionError" in probe.results[0].detail
    assert probe.passed == 1 and probe.failed == 2 and not probe.ok
    assert [r.rule for r in probe.results] == ["S1", "A1", "S1"]
    assert probe.results[1].to_json()["rule"] == "A1"
    assert probe.results[1].to_json()["spec"] == "docs/PROTOCOL.md#a1"


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
