"""harness fuzz server and harness replay: the oracle, the runner, and whole runs against
buggy and correct servers of the zoo (tests/zoo/) and the embedded reference server."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from harness.apps import echo_app, search_app
from harness.cli import main
from harness.frames import frame
from harness.livefuzz.engine import FuzzReport, FuzzStats, _shrink_more
from harness.livefuzz.engine import fuzz as engine_fuzz
from harness.livefuzz.oracle import ConnectionOracle
from harness.livefuzz.program import Close, HalfClose, Idle, Open, Read, Send, from_json, to_json
from harness.livefuzz.replay import load
from harness.livefuzz.runner import CaseResult, Runner
from harness.livefuzz.target import Target, running
from harness.message import Message
from harness.probe.profiles import GUIDE, STRICT
from tests.zoo import ZOO

SEARCH = Message.from_json({"action": "search", "value": "morpheus"}).encode()
FLOAT_LENGTH = frame(
    b'{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
    b'"content-length": 41.0}',
    b'{"action": "search", "value": "morpheus"}',
)


def zoo_command(name: str) -> list[str]:
    return [sys.executable, str(ZOO[name].path), "{host}", "{port}"]


# -- programs and the oracle -------------------------------------------------------------


def test_program_json_round_trip_keeps_every_step() -> None:
    program = [
        Open(1),
        Send(0, b"\x00\xff" + SEARCH, (1, 5), 0.005, "a search"),
        Idle(0.02),
        Read(0),
        HalfClose(0),
        Close(1),
    ]
    assert from_json(json.loads(json.dumps(to_json(program)))) == program


@pytest.mark.parametrize(
    "bad",
    [{"step": "jump"}, {"step": "send", "conn": 0}, {"step": "send", "conn": -1, "data": ""}, [1]],
)
def test_program_from_json_refuses_malformed_steps(bad: object) -> None:
    with pytest.raises(ValueError):
        from_json([bad])


def test_oracle_owes_the_answer_and_closes_after_a_protocol_error() -> None:
    oracle = ConnectionOracle(search_app, STRICT)
    oracle.receive(SEARCH[:10])
    assert oracle.expected == [] and not oracle.must_close
    oracle.receive(SEARCH[10:] + FLOAT_LENGTH)
    assert [e.code for e in oracle.expected] == [None, "invalid-header-value"]
    assert oracle.must_close and oracle.error == "invalid-header-value"


def test_oracle_guide_profile_stops_judging_at_a_relaxed_error() -> None:
    oracle = ConnectionOracle(search_app, GUIDE)
    oracle.receive(SEARCH + FLOAT_LENGTH)
    assert oracle.judged == 1  # the answer to the search is judged, not what follows
    assert oracle.close_accepted(1)


def test_oracle_half_close_mid_message_owes_incomplete_message() -> None:
    oracle = ConnectionOracle(echo_app, STRICT)
    oracle.receive(SEARCH[:-3])
    oracle.receive_eof()
    assert [e.code for e in oracle.expected] == ["incomplete-message"] and oracle.must_close


# -- the runner on hand-written programs -------------------------------------------------


@pytest.mark.parametrize(
    ("server", "program", "failure"),
    [
        (
            "float_length_streams",
            [Send(0, FLOAT_LENGTH)],
            "expected the error message 'invalid-header-value'",
        ),
        ("half_close_selectors", [Send(0, SEARCH), HalfClose(0)], "answer 1 of 1"),
        ("pipeline_drop_selectors", [Send(0, SEARCH + SEARCH)], "answer 2 of 2"),
    ],
)
def test_runner_fails_the_buggy_server_and_passes_its_correct_twin(
    server: str, program: list[object], failure: str
) -> None:
    twin = "correct_" + server.rsplit("_", 1)[1]
    twin = {"correct_streams": "correct_asyncio_streams", "correct_protocol": "correct_asyncio_protocol"}.get(
        twin, twin
    )
    for name, bad in ((server, True), (twin, False)):
        with running(Target(command=tuple(zoo_command(name))), search_app) as (host, port, supervised):
            runner = Runner(host, port, search_app, STRICT, timeout=2.0, server=supervised)
            result = runner.run(program)  # type: ignore[arg-type]
        if bad:
            assert result.failure is not None and failure in result.failure, result.failure
            assert result.transcripts and result.transcripts[0].sent.startswith(b"\x00")
        else:
            assert result.failure is None, f"{name}: {result.failure}"


def test_runner_reports_a_server_that_dies() -> None:
    with running(Target(command=tuple(zoo_command("crash_on_missing_value_selectors"))), search_app) as (
        host,
        port,
        supervised,
    ):
        runner = Runner(host, port, search_app, STRICT, timeout=2.0, server=supervised)
        result = runner.run([Send(0, Message.from_json({"action": "search"}).encode()), Read(0)])
        assert result.failure is not None and "the server" in result.failure
        assert runner.run([Send(0, SEARCH), Read(0)]).failure is None  # restarted for the next case


# -- whole runs --------------------------------------------------------------------------


def fuzz(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> tuple[int, str]:
    code = main(
        ["fuzz", "server", "--quiet", "--out", str(tmp_path / "out"), "--db", str(tmp_path / "db"), *args]
    )
    return code, capsys.readouterr().out


@pytest.mark.parametrize(
    ("server", "seed"),
    [
        # Runs are reproducible: each seed is one that reaches the bug within the first cases
        # (case numbers with the generator of this commit; another generator only makes the
        # search longer, within the same 40 s budget). Cases 1-34 are the canonical cases,
        # the same for every seed: the header-value and encoding bugs are found there.
        ("float_length_streams", "0"),  # a header value not validated (case 8)
        ("binary_mangled_threads", "3"),  # binary content mangled (case 65: a generated one)
        pytest.param("byteorder_unchecked_protocol", "3", marks=pytest.mark.slow),  # header value (case 14)
        pytest.param("peer_codec_streams", "1", marks=pytest.mark.slow),  # an encoding (case 11)
        pytest.param("latin1_request_socketserver", "2", marks=pytest.mark.slow),  # an encoding (case 12)
    ],
)
def test_fuzz_finds_the_bug_shrinks_it_and_replay_says_still_failing(
    server: str, seed: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = fuzz(
        capsys,
        tmp_path,
        "--max-time",
        "40",
        "--seed",
        seed,
        "--shrink-time",
        "10",
        "--",
        *zoo_command(server),
    )
    assert code == 1, out
    steps = re.findall(r"^  (\d+)\. ", out, re.M)
    assert 1 <= len(steps) <= 4, out  # shrunk: a few numbered steps
    replay_file = Path(re.search(r"^replay file: (.+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert load(replay_file).command == tuple(zoo_command(server))
    assert re.search(r"^replay: harness replay .+ -- ", out, re.M)
    assert main(["replay", str(replay_file), "--runs", "1"]) == 1
    assert "STILL FAILING" in capsys.readouterr().out
    correct = ZOO[server].style
    twin = next(s for s in ZOO.values() if s.correct and s.style == correct)
    assert main(["replay", str(replay_file), "--", *zoo_command(twin.name)]) == 0
    assert "FIXED" in capsys.readouterr().out


@pytest.mark.parametrize(
    "server",
    [
        "correct_threads",
        pytest.param("correct_asyncio_streams", marks=pytest.mark.slow),
        pytest.param("correct_selectors", marks=pytest.mark.slow),
        pytest.param("correct_socketserver", marks=pytest.mark.slow),
        pytest.param("correct_asyncio_protocol", marks=pytest.mark.slow),
    ],
)
def test_fuzz_finds_nothing_in_a_correct_server(
    server: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = fuzz(capsys, tmp_path, "--max-time", "6", "--", *zoo_command(server))
    assert code == 0, out
    assert out.startswith("no failure:")


def test_fuzz_finds_nothing_in_the_reference_server(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out = fuzz(capsys, tmp_path, "--max-time", "5", "--app", "echo")
    assert code == 0, out
    code, out = fuzz(
        capsys,
        tmp_path,
        "--max-time",
        "5",
        "--",
        sys.executable,
        "-m",
        "harness",
        "serve",
        "--host",
        "{host}",
        "--port",
        "{port}",
    )
    assert code == 0, out


def test_the_example_database_replays_a_failure_first(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # peer_codec_streams: a bug the generator hits within the first cases (about 0.1-2 s), so the
    # test is about the database, not about how soon a slow search gets lucky
    command = zoo_command("peer_codec_streams")
    code, out = fuzz(capsys, tmp_path, "--max-time", "40", "--shrink-time", "5", "--", *command)
    assert code == 1, out
    code, again = fuzz(
        capsys, tmp_path, "--max-time", "40", "--seed", "7", "--shrink-time", "5", "--", *command
    )
    assert code == 1, again
    assert re.search(r"\(case 1\)", again), again


@pytest.mark.parametrize(
    "args",
    [
        ["1", "2", "3"],
        ["localhost", "http"],
        ["--max-time", "0"],
        ["--shrink-time", "-1"],
        ["--idle-timeout", "-1"],
        ["--app", "nope"],
        ["--profile", "x"],
        ["--"],
        ["127.0.0.1", "1", "--", "python", "server.py", "{port}"],
    ],
)
def test_fuzz_usage_errors_are_one_line_and_exit_2(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["fuzz", "server", *args])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_replay_refuses_a_file_that_is_not_a_replay(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 99, "steps": []}')
    assert main(["replay", str(bad)]) == 2
    assert "schema version 99" in capsys.readouterr().err


# -- reproducibility -----------------------------------------------------------------------


def _engine_run(runner: Runner, seed: int, **kwargs: object) -> FuzzReport:
    return engine_fuzz(runner, seed=seed, database=None, **kwargs)  # type: ignore[arg-type]


def test_the_same_seed_generates_the_same_programs_whatever_the_profile() -> None:
    from hypothesis import settings

    with running(Target(), search_app) as (host, port, _):
        runner = Runner(host, port, search_app, STRICT)
        # (no canonical cases: they are the same whatever the seed; the generated programs are compared)
        first = _engine_run(runner, 3, max_time=60, max_examples=25, canonical=False)
        profile = settings.get_current_profile_name()
        settings.load_profile("ci")  # derandomize=True, another max_examples: must not matter
        try:
            again = _engine_run(runner, 3, max_time=60, max_examples=25, canonical=False)
        finally:
            settings.load_profile(profile)
        other = _engine_run(runner, 4, max_time=60, max_examples=25, canonical=False)
    assert first.stats.cases == again.stats.cases == 25
    assert first.stats.digest == again.stats.digest
    assert other.stats.digest != first.stats.digest


def test_a_run_that_found_nothing_leaves_nothing_that_changes_the_next(tmp_path: Path) -> None:
    # Hypothesis keeps each target's best cases in the database and replays them first; a
    # run of the same seed must generate the same cases whether an earlier run left a database
    with running(Target(), search_app) as (host, port, _):
        runner = Runner(host, port, search_app, STRICT)
        digests = [
            engine_fuzz(runner, seed=1, max_time=60, max_examples=20, database=tmp_path / "db").stats.digest
            for _ in range(2)
        ]
        digests.append(engine_fuzz(runner, seed=1, max_time=60, max_examples=20, database=None).stats.digest)
    assert len(set(digests)) == 1, digests


def test_the_same_seed_finds_a_zoo_bug_at_the_same_case() -> None:
    found = []
    for _ in range(2):
        with running(Target(command=tuple(zoo_command("peer_codec_streams"))), search_app) as (h, p, s):
            report = _engine_run(Runner(h, p, search_app, STRICT, server=s), 2, max_time=40, shrink_time=2.0)
        assert report.finding is not None
        found.append(report.finding.first_found_case)
    assert found[0] == found[1], found


# -- shrinking pipelines -----------------------------------------------------------------


def test_a_pipelined_send_loses_one_item_at_a_time() -> None:
    a, b = SEARCH, FLOAT_LENGTH
    send = Send(
        0,
        a + b + a,
        (3, len(a) + 5, len(a) + len(b) + 1),
        0.0,
        "x",
        ((len(a), "a"), (len(b), "b"), (len(a), "a")),
    )
    middle_out = send.without_part(1)
    assert middle_out.data == a + a and middle_out.cuts == (3, len(a) + 1)
    assert middle_out.parts == ((len(a), "a"), (len(a), "a")) and middle_out.label == "2 pipelined: a; a"
    last = send.without_part(0).without_part(1)
    assert last.data == b and last.parts == () and last.label == "b" and last.cuts == (5,)
    assert from_json(to_json([send])) == [send]
    with pytest.raises(ValueError):
        Send(0, b"abc", parts=((1, "a"),))


class _FailsOnFloatLength:
    """A runner without sockets: a case fails when any send carries a 41.0 content-length."""

    app = search_app
    profile = STRICT

    def run(self, program: list[object]) -> CaseResult:
        bad = any(isinstance(s, Send) and b'"content-length": 41.0' in s.data for s in program)
        return CaseResult(failure="a float length" if bad else None)


def test_shrinking_leaves_the_one_pipelined_item_that_fails() -> None:
    # what Hypothesis leaves: three pipelined items, cut, on two steps; only the middle item fails
    items = ((len(SEARCH), "a search"), (len(FLOAT_LENGTH), "a float length"), (len(SEARCH), "a search"))
    pipeline = Send(0, SEARCH + FLOAT_LENGTH + SEARCH, (5, 200), 0.001, "3 pipelined", items)
    program = [Send(1, SEARCH), pipeline, Read(0)]
    runner = _FailsOnFloatLength()
    first = runner.run(program)
    stats = FuzzStats()
    shrunk, result = _shrink_more(program, first, runner, {}, set(), stats, [])  # type: ignore[arg-type]
    assert shrunk == [Send(0, FLOAT_LENGTH, (), 0.0, "a float length")], shrunk
    assert result.failure == "a float length"
    assert stats.cases < 20  # verdicts remembered: no program runs twice


# -- memory during a case ----------------------------------------------------------------

BALLOON = '''
import sys
from harness.apps.search import SearchApp
from harness.server import ServerConfig, serve

class Balloon(SearchApp):
    """Builds a 96 MiB scratch buffer for content over 1000 bytes, then frees it."""

    def encode_response(self, header, content):
        if len(content) > 1000:
            scratch = b"x" * (96 << 20)
            del scratch
        return super().encode_response(header, content)

serve(ServerConfig(host=sys.argv[1], port=int(sys.argv[2]), app=Balloon()))
'''


def test_memory_that_balloons_and_is_freed_within_a_case_is_caught(tmp_path: Path) -> None:
    script = tmp_path / "balloon.py"
    script.write_text(BALLOON)
    big = Message.from_json({"action": "search", "value": "m" * 2000}).encode()
    with running(Target(command=(sys.executable, str(script), "{host}", "{port}")), search_app) as (h, p, s):
        assert s is not None
        runner = Runner(h, p, search_app, STRICT, server=s, rss_limit=64 << 20)
        assert runner.run([Send(0, SEARCH), Read(0)]).failure is None  # small content: no balloon
        result = runner.run([Send(0, big), Read(0)])
        assert result.failure is not None and "RSS peaked" in result.failure, result.failure
        assert (
            s.rss() - (runner._baseline_rss or 0) < 64 << 20
        )  # freed: the end-of-case check alone misses it
