"""harness fuzz server's sentinels (idle connections, memory programs) and canonical cases, against
buggy zoo servers and their correct twins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.apps import search_app
from harness.livefuzz.engine import fuzz as engine_fuzz
from harness.livefuzz.program import (
    AwaitClose,
    Flood,
    LargeRequests,
    Open,
    Send,
    Step,
    canonical_programs,
    from_json,
    to_json,
)
from harness.livefuzz.replay import ReplayFile, load, write
from harness.livefuzz.runner import Runner
from harness.livefuzz.sentinels import Sentinels
from harness.livefuzz.target import Target, running
from harness.message import Message
from harness.probe.profiles import STRICT
from tests.zoo import IDLE_TIMEOUT_ENV, ZOO

HALF = Message.from_json({"action": "search", "value": "morpheus"}).encode()[:12]


def zoo(name: str) -> Target:
    return Target(command=(sys.executable, str(ZOO[name].path), "{host}", "{port}"))


def test_a_replay_file_keeps_the_runs_memory_bound(tmp_path: Path) -> None:
    replay = ReplayFile(steps=[Flood(0, 1 << 20, 1.0, 16 << 10)], failure="RSS", rss_limit=24.0)
    again = load(write(replay, tmp_path))
    assert again.rss_limit == 24.0 and again.steps == replay.steps


def test_the_sentinels_steps_round_trip_through_json() -> None:
    program = [AwaitClose(0, 33.0), Flood(1, 96 << 20, 8.0, 16 << 10), LargeRequests(96, 1000 << 10)]
    assert from_json(to_json(program)) == program
    for bad in (
        {"step": "await-close", "conn": 0},
        {"step": "flood", "conn": 0, "bytes": -1, "seconds": 1, "rcvbuf": 0},
        {"step": "large-requests", "count": 0, "bytes": 10},
        {"step": "large-requests", "count": 2, "bytes": 1.5},
    ):
        with pytest.raises(ValueError):
            from_json([bad])


@pytest.mark.parametrize("first", [None, HALF])
def test_await_close_fails_a_server_without_idle_timeout_and_passes_its_twin(
    first: bytes | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "0.3")
    program = [Send(0, first) if first else Open(0), AwaitClose(0, 1.5)]
    for name, bad in (("no_idle_timeout_streams", True), ("correct_asyncio_streams", False)):
        with running(zoo(name), search_app) as (host, port, server):
            result = Runner(host, port, search_app, STRICT, server=server).run(program)  # type: ignore[arg-type]
        if bad:
            assert result.failure is not None and "still open" in result.failure and result.step == 1
        else:
            assert result.failure is None, f"{name}: {result.failure}"


@pytest.mark.parametrize(
    ("program", "bad", "twin", "rss_limit"),
    [
        # a flood that is never read fails a server without backpressure
        (
            [Flood(0, 48 << 20, 6.0, 16 << 10)],
            "unbounded_buffer_protocol",
            "correct_asyncio_protocol",
            24 << 20,
        ),
        # large requests fail a server that keeps them
        ([LargeRequests(32, 1000 << 10)], "memory_leak_socketserver", "correct_socketserver", 16 << 20),
    ],
    ids=["flood", "large-requests"],
)
def test_a_memory_program_fails_the_server_it_targets_and_passes_its_twin(
    program: list[Step], bad: str, twin: str, rss_limit: int
) -> None:
    for name in (bad, twin):
        with running(zoo(name), search_app) as (host, port, server):
            result = Runner(host, port, search_app, STRICT, server=server, rss_limit=rss_limit).run(program)
        if name == bad:
            assert result.failure is not None and "RSS" in result.failure, result.failure
        else:
            assert result.failure is None, f"{name}: {result.failure}"


def test_the_idle_sentinel_ends_a_run_against_a_server_without_idle_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(IDLE_TIMEOUT_ENV, "0.5")
    for name, bad in (("no_idle_timeout_streams", True), ("correct_asyncio_streams", False)):
        with running(zoo(name), search_app) as (host, port, server):
            runner = Runner(host, port, search_app, STRICT, server=server, timeout=1.0)
            budget = 5.0 if bad else 2.0  # the bound is 3.5 s (0.5 s and a margin); closed at 0.5 s
            sentinels = Sentinels(runner, idle_timeout=0.5, memory=False, max_time=budget)
            report = engine_fuzz(runner, max_time=budget, database=None, sentinels=sentinels)
        if bad:
            assert report.finding is not None and report.finding.sentinel, report
            assert isinstance(report.finding.program[-1], AwaitClose)
            assert "still open" in (report.finding.result.failure or "")
        else:
            assert report.finding is None, report.finding
            assert any(note.startswith("L2 judged") for note in report.notes), report.notes


def test_a_run_too_short_says_the_idle_timeout_was_not_judged() -> None:
    with running(Target(), search_app) as (host, port, _):
        runner = Runner(host, port, search_app, STRICT)
        sentinels = Sentinels(runner, idle_timeout=30.0, memory=True, max_time=60.0)
        report = engine_fuzz(runner, max_examples=5, database=None, sentinels=sentinels)
    assert report.finding is None
    assert len(report.notes) == 1 and report.notes[0].startswith("L2 not judged"), report.notes


def test_sentinels_do_not_change_the_programs_a_seed_generates() -> None:
    digests = []
    with running(Target(), search_app) as (host, port, _):
        runner = Runner(host, port, search_app, STRICT)
        for with_sentinels in (False, True):
            sentinels = Sentinels(runner, idle_timeout=30.0, memory=False, max_time=60.0)
            report = engine_fuzz(
                runner,
                seed=3,
                max_examples=15,
                database=None,
                sentinels=sentinels if with_sentinels else None,
            )
            digests.append(report.stats.digest)
    assert digests[0] == digests[1]


def test_every_canonical_case_passes_against_the_reference_server() -> None:
    programs = canonical_programs()
    assert len(programs) >= 13 + 21  # each row of the violation table, each bad header value
    with running(Target(), search_app) as (host, port, _):
        runner = Runner(host, port, search_app, STRICT)
        failures = [(p[0], r.failure) for p in programs if (r := runner.run(p)).failure is not None]
    assert not failures, failures


@pytest.mark.parametrize("server", ["duplicate_keys_threads", "nan_socketserver"])
def test_a_violation_table_row_mishandled_is_found_by_the_canonical_cases(server: str) -> None:
    with running(zoo(server), search_app) as (host, port, supervised):
        runner = Runner(host, port, search_app, STRICT, server=supervised)
        report = engine_fuzz(runner, max_time=20, database=None, shrink_time=2.0)
    assert report.finding is not None
    assert report.finding.first_found_case <= len(canonical_programs()), report.finding.first_found_case


def test_large_requests_stop_at_a_smaller_content_limit_without_failing() -> None:
    from harness.server import ReferenceServer

    with ReferenceServer("127.0.0.1", 0, app=search_app, max_content_length=64 << 10) as reference:
        host, port = reference.address
        result = Runner(host, port, search_app, STRICT).run([LargeRequests(4, 1000 << 10)])
    assert result.failure is None, result.failure
