"""The load generator (harness.load) and the ``harness load`` command, on loopback, bounded."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import random
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness import Decoder, Message
from harness.cli import main
from harness.load import (
    CSV_COLUMNS,
    LatencyHistogram,
    LoadConfig,
    LoadResult,
    LoadStatus,
    ServerProcess,
    Thresholds,
    default_requests,
    run_load,
)
from harness.load.pipeline import PipelineClient
from harness.load.state import RunState
from harness.server import ReferenceServer

pytestmark = pytest.mark.timeout(60)


class EchoServer:
    """A bare asyncio echo server in a thread: every request comes back as its own answer.

    ``answer(n, request_bytes)`` replaces the echo: it gets the number of requests answered
    so far (all connections) and one whole request, and returns the bytes to send back.
    """

    def __init__(self, answer: Callable[[int, bytes], bytes] | None = None) -> None:
        self.answer = answer
        self.answered = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.address: tuple[str, int] = ("127.0.0.1", 0)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        outer = self

        class Echo(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport: asyncio.WriteTransport = transport  # type: ignore[assignment]
                self.decoder = Decoder()

            def data_received(self, data: bytes) -> None:
                if outer.answer is None:
                    self.transport.write(data)
                    return
                for message in self.decoder.feed(data):
                    self.transport.write(outer.answer(outer.answered, message.encode()))
                    outer.answered += 1

        server = self.loop.run_until_complete(self.loop.create_server(Echo, "127.0.0.1", 0))
        self.address = server.sockets[0].getsockname()[:2]
        self.ready.set()
        self.loop.run_forever()
        server.close()
        self.loop.run_until_complete(server.wait_closed())
        self.loop.close()

    def __enter__(self) -> tuple[str, int]:
        self.thread.start()
        assert self.ready.wait(10)
        return self.address

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    with EchoServer() as address:
        yield address


@pytest.fixture(scope="module")
def reference_server() -> Iterator[tuple[str, int]]:
    with ReferenceServer(idle_timeout=10.0) as server:
        yield server.address


def check_consistent(result: LoadResult) -> None:
    latency = result.latency_ms()
    assert result.latency.count == result.answers + sum(
        n for kind, n in result.errors.items() if kind.startswith("error-response")
    )
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert result.sent >= result.answers
    assert result.duration > 0


def test_load_pipeline_against_echo_counts_every_echoed_request(echo_server: tuple[str, int]) -> None:
    host, port = echo_server
    config = LoadConfig(host, port, connections=4, depth=8, duration=0.5)
    result = run_load(config)
    assert result.errors == {}
    assert result.answers > 100
    check_consistent(result)
    # Every connection keeps `depth` requests in flight: at most that many are unanswered.
    assert result.sent - result.answers <= config.connections * config.depth


def test_load_pipeline_against_reference_server_has_no_errors(reference_server: tuple[str, int]) -> None:
    host, port = reference_server
    result = run_load(LoadConfig(host, port, connections=8, depth=4, duration=0.5, warmup=0.2))
    assert result.errors == {}
    assert result.answers > 100
    check_consistent(result)
    assert result.requests_per_second == pytest.approx(result.answers / result.duration)


def test_load_on_uvloop_gives_the_same_kind_of_result(reference_server: tuple[str, int]) -> None:
    pytest.importorskip("uvloop")
    host, port = reference_server
    result = run_load(LoadConfig(host, port, connections=4, depth=4, duration=0.3), use_uvloop=True)
    assert result.errors == {}
    assert result.answers > 50


def test_load_connect_per_request_opens_a_connection_for_every_request(
    reference_server: tuple[str, int],
) -> None:
    host, port = reference_server
    result = run_load(LoadConfig(host, port, connections=4, duration=0.5, mode="connect-per-request"))
    assert result.errors == {}
    assert result.answers > 20
    assert result.depth == 1
    check_consistent(result)


def test_load_counts_error_messages_as_errors_not_answers(reference_server: tuple[str, int]) -> None:
    host, port = reference_server
    # Framed correctly but not JSON: the server answers with an error message and stays in sync.
    bad = Message.from_bytes(b"{not json", content_type="text/json", encoding="utf-8").encode()
    result = run_load(LoadConfig(host, port, connections=2, depth=2, duration=0.3, requests=[bad]))
    assert result.answers == 0
    assert set(result.errors) == {"error-response:content-not-json"}
    assert result.errors["error-response:content-not-json"] > 10


def test_load_checks_every_answer_when_answers_to_the_same_request_differ() -> None:
    # Good answers, but a different one every time: the learnt-answer fast path must give up
    # and every answer still be counted (and checked) one by one.
    def numbered(n: int, request: bytes) -> bytes:
        return Message.from_json({"result": f"answer {n}"}).encode()

    with EchoServer(numbered) as (host, port):
        result = run_load(LoadConfig(host, port, connections=3, depth=4, duration=0.4))
    assert result.errors == {}
    assert result.answers > 50
    check_consistent(result)


def test_load_counts_error_messages_that_follow_good_answers() -> None:
    # The first answers teach the generator what to expect; then the server starts answering
    # with error messages: the batch comparison fails and each error is counted as one.
    good = {raw: search_app_bytes(raw) for raw in default_requests()}
    error = Message.from_json({"error": "overloaded", "detail": "try later"}).encode()

    def degrading(n: int, request: bytes) -> bytes:
        return good[request] if n < 200 else error

    with EchoServer(degrading) as (host, port):
        result = run_load(LoadConfig(host, port, connections=2, depth=4, duration=0.5))
    assert 0 < result.answers <= 200
    assert result.errors.get("error-response:overloaded", 0) > 50
    assert set(result.errors) == {"error-response:overloaded"}
    check_consistent(result)


def search_app_bytes(raw: bytes) -> bytes:
    from harness.apps import search_app

    return search_app(Decoder().feed(raw)[0]).encode()


def test_load_reports_progress_every_status_interval(reference_server: tuple[str, int]) -> None:
    host, port = reference_server
    statuses: list[LoadStatus] = []
    config = LoadConfig(host, port, connections=2, depth=2, duration=0.5, warmup=0.5, status_interval=0.1)
    result = run_load(config, statuses.append)
    assert len(statuses) >= 3
    assert not statuses[0].measuring and statuses[-1].measuring
    assert [s.elapsed for s in statuses] == sorted(s.elapsed for s in statuses)
    assert statuses[-1].answers <= result.answers
    assert all(s.open_connections <= 2 and s.errors == 0 for s in statuses)
    assert any(s.interval_rate > 0 and s.interval_p99_ms > 0 for s in statuses)


def test_load_counts_refused_connections() -> None:
    with socket.socket() as sock:  # a port that is certainly closed: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = run_load(LoadConfig("127.0.0.1", port, connections=2, duration=0.3))
    assert result.answers == 0
    assert result.errors.get("connect-refused", 0) >= 2
    assert result.latency.count == 0


def test_load_times_out_a_server_that_never_answers() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # accepted by the kernel, never read, never answered
        host, port = listener.getsockname()
        result = run_load(LoadConfig(host, port, connections=2, depth=1, duration=1.2, timeout=0.3))
    assert result.answers == 0
    assert result.errors.get("timeout", 0) >= 2


def test_load_counts_a_server_that_closes_with_answers_due() -> None:
    # A server that answers the first request of each connection and then closes it,
    # with two more requests in flight: each such close is an error, and the generator
    # reconnects.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        host, port = listener.getsockname()
        request = default_requests()[0]
        stop = threading.Event()

        def serve_one_then_close() -> None:
            listener.settimeout(0.2)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(2)
                    data = b""
                    while len(data) < len(request):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(request)  # one answer (an echo), then close with more due

        thread = threading.Thread(target=serve_one_then_close, daemon=True)
        thread.start()
        try:
            result = run_load(LoadConfig(host, port, connections=1, depth=3, duration=0.5))
        finally:
            stop.set()
            thread.join(5)
    assert result.answers >= 1
    assert result.errors.get("closed-by-server", 0) >= 1


def test_latency_histogram_percentiles_within_a_sixty_fourth() -> None:
    rng = random.Random(7)
    values = [int(rng.lognormvariate(13, 1.5)) for _ in range(20000)] + [0, 1, 127, 128, 129, 10**12]
    hist = LatencyHistogram()
    for value in values:
        hist.add(value)
    ordered = sorted(values)
    for pct in (1, 50, 90, 99, 99.9, 100):
        exact = ordered[max(1, math.ceil(pct / 100 * len(ordered))) - 1]
        assert abs(hist.percentile(pct) - exact) <= exact / 64 + 1, pct
    assert hist.max == 10**12 and hist.count == len(values)
    assert hist.mean == pytest.approx(sum(values) / len(values))


def test_latency_histogram_buckets_are_contiguous_and_ordered() -> None:
    previous = -1
    for value in range(5000):  # every bucket used, in order, none skipped
        index = LatencyHistogram.bucket(value)
        assert previous <= index <= previous + 1
        previous = index
    previous = -1
    for value in sorted(2**k + d for k in range(12, 64) for d in (-1, 0, 1)):
        index = LatencyHistogram.bucket(value)
        assert index >= previous
        assert LatencyHistogram._lowest(index) <= value < LatencyHistogram._lowest(index + 1)
        previous = index
    LatencyHistogram().add(2**64 - 1)  # the largest latency perf_counter_ns could give fits


def test_latency_histogram_since_and_runs() -> None:
    hist = LatencyHistogram()
    hist.add(1000, 5)
    before = hist.copy()
    hist.add(3000, 2)
    hist.add(2000_000, 1)
    recent = hist.since(before)
    assert recent.count == 3 and recent.total == 2 * 3000 + 2000_000
    assert recent.max == 2000_000
    assert recent.percentile(50) == pytest.approx(3000, rel=1 / 64)
    assert LatencyHistogram().percentile(50) != LatencyHistogram().percentile(50)  # nan when empty


def test_load_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        LoadConfig("127.0.0.1", 1, connections=0)
    with pytest.raises(ValueError):
        LoadConfig("127.0.0.1", 1, mode="telepathy")
    with pytest.raises(ValueError):
        LoadConfig("127.0.0.1", 1, requests=[])


def test_cli_load_json_against_a_running_server(
    reference_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = reference_server
    argv = ["load", host, str(port), "-c", "3", "-d", "2", "--duration", "0.4", "--warmup", "0"]
    code = main([*argv, "--json", "--quiet"])
    out = capsys.readouterr().out
    data = json.loads(out)
    assert code == 0
    assert data["answers"] > 0
    assert data["errors_total"] == 0
    assert data["connections"] == 3 and data["depth"] == 2
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p99"] <= data["latency_ms"]["max"]
    assert data["server"] == "external"


def test_cli_load_prints_a_status_line_on_stderr(
    reference_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = reference_server
    code = main(["load", host, str(port), "-c", "2", "--duration", "1.6", "--warmup", "0"])
    captured = capsys.readouterr()
    assert code == 0
    assert "req/s" in captured.err and "measuring" in captured.err
    assert "latency p50" in captured.out


def test_cli_load_exit_status_is_1_when_nothing_answers(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        started = time.monotonic()
        code = main(["load", "127.0.0.1", str(port), "--duration", "2", "--warmup", "0", "--quiet"])
        elapsed = time.monotonic() - started
    assert code == 1
    captured = capsys.readouterr()
    # an unreachable target fails at once, before any load, with one line on stderr
    assert "connect-refused" in captured.err
    assert captured.err.count("\n") == 1 and captured.err.startswith("harness load: cannot reach")
    assert captured.out == ""
    assert elapsed < 1.0


def test_cli_load_wants_host_and_port_together(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["load", "127.0.0.1"]) == 2
    assert "HOST and PORT" in capsys.readouterr().err


def test_cli_load_without_target_starts_the_reference_server_in_a_child_process(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["load", "-c", "2", "-d", "2", "--duration", "0.5", "--warmup", "0", "--json", "--quiet"]
    code = main(argv)
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["server"] == "reference (started by harness load)"
    assert data["answers"] > 0 and data["errors_total"] == 0


def test_server_process_reports_a_server_that_never_listens() -> None:
    with pytest.raises(RuntimeError, match="exited with 3"):
        ServerProcess([sys.executable, "-c", "raise SystemExit(3)"]).start()
    with pytest.raises(RuntimeError, match="unexpected first line"):
        ServerProcess([sys.executable, "-c", "print('hello')"]).start()
    process = ServerProcess([sys.executable, "-c", "import time; time.sleep(30)"], startup_timeout=0.5)
    with pytest.raises(TimeoutError):
        process.start()
    assert process.process is not None and process.process.poll() is not None
    closes_stdout = "import os, time; os.close(1); time.sleep(30)"
    process = ServerProcess([sys.executable, "-c", closes_stdout], startup_timeout=0.5)
    with pytest.raises(RuntimeError, match="closed its stdout before listening"):
        process.start()
    assert process.process is not None and process.process.poll() is not None


@pytest.mark.parametrize(
    "bad",
    [{"duration": 0}, {"duration": math.nan}, {"warmup": -1}, {"warmup": math.nan}, {"timeout": math.nan}],
)
def test_load_config_refuses_durations_that_would_never_end_or_start(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="duration and timeout must be > 0"):
        LoadConfig("127.0.0.1", 1, **bad)


# -- the pipelined client's reading, sans network --------------------------------------


class _NullTransport:
    """Takes the client's writes and drops them."""

    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _feed_pipeline_client(chunks: list[bytes], depth: int) -> tuple[RunState, PipelineClient]:
    """A pipelined client of a measuring run, fed ``chunks`` as if they came from the server."""

    async def feed() -> tuple[RunState, PipelineClient]:
        run = RunState(LoadConfig("127.0.0.1", 1, depth=depth))
        run.measuring = True
        client = PipelineClient(run, 0)
        client.connection_made(_NullTransport())  # type: ignore[arg-type]
        for chunk in chunks:
            client.data_received(chunk)
        return run, client

    return asyncio.run(feed())


SEARCH_ANSWERS = [search_app_bytes(raw) for raw in default_requests()]
OVERLOADED = Message.from_json({"error": "overloaded", "detail": "try later"}).encode()


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 17, 64, 150, 400])
def test_load_pipeline_client_counts_answers_split_anywhere(size: int) -> None:
    # The first answers teach the run what to expect (through the frame reader); the later
    # ones go by the fast path when a chunk starts at a frame boundary, and by the reader
    # when it does not: every answer is counted once, whatever the cuts.
    stream = b"".join(SEARCH_ANSWERS[k % 5] for k in range(60))
    chunks = [stream[i : i + size] for i in range(0, len(stream), size)]
    run, client = _feed_pipeline_client(chunks, depth=64)
    assert run.errors == {}
    assert run.answers == 60
    assert run.expected == SEARCH_ANSWERS
    assert run.expected_ring is not None and not run.answers_vary
    assert client.frames.buffered == 0 and client.in_flight == 64 and not client.failed


@given(
    answers=st.lists(st.sampled_from(["good", "error"]), min_size=1, max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=10**6), max_size=30),
)
def test_load_pipeline_client_counts_good_and_error_answers_whatever_the_cuts(
    answers: list[str], cuts: list[int]
) -> None:
    # Error messages among learnt answers: a batch that holds one is not taken by the fast
    # path; the reader, at a frame boundary, reads it and each answer gets its verdict.
    learn = b"".join(SEARCH_ANSWERS)
    stream = b"".join(
        SEARCH_ANSWERS[k % 5] if kind == "good" else OVERLOADED for k, kind in enumerate(answers, start=5)
    )
    run, client = _feed_pipeline_client([learn, *_cut(stream, cuts)], depth=64)
    errors = answers.count("error")
    assert run.answers == 5 + answers.count("good")
    assert run.errors == ({"error-response:overloaded": errors} if errors else {})
    assert run.expected == SEARCH_ANSWERS and not run.answers_vary
    assert client.frames.buffered == 0 and not client.failed


def test_load_pipeline_client_counts_a_malformed_answer_as_a_bad_response() -> None:
    run, client = _feed_pipeline_client([SEARCH_ANSWERS[0], b"\x00\x00"], depth=4)
    assert run.answers == 1
    assert run.errors == {"bad-response:zero-header-length": 1}
    assert client.failed


# -- a fixed arrival rate, thresholds, CSV and JSON files ------------------------------


def test_load_at_a_fixed_rate_holds_the_rate(reference_server: tuple[str, int]) -> None:
    host, port = reference_server
    config = LoadConfig(host, port, connections=4, depth=5, duration=1.0, rate=400)
    result = run_load(config)
    check_consistent(result)
    assert result.rate == 400 and not result.errors
    # closed loop, these connections would run at thousands of requests/s
    assert 320 <= result.requests_per_second <= 440
    assert result.waiting == 0


def test_load_at_a_fixed_rate_counts_latency_from_the_intended_send_time() -> None:
    # The server stalls 0.3 s once. Closed loop, only the requests in flight then see it;
    # at a fixed rate every request that fell due during the stall waits for it, so the
    # stall shows in the percentiles (coordinated omission corrected).
    def answer(n: int, request: bytes) -> bytes:
        if n == 40:
            time.sleep(0.3)
        return request

    with EchoServer(answer) as (host, port):
        fixed = run_load(LoadConfig(host, port, connections=2, depth=4, duration=1.2, rate=200))
    with EchoServer(answer) as (host, port):
        closed = run_load(LoadConfig(host, port, connections=2, depth=4, duration=1.2))
    assert fixed.errors == {} and closed.errors == {}
    fixed_ms, closed_ms = fixed.latency_ms(), closed.latency_ms()
    # about 60 of the ~240 requests fell due during the stall: p90 shows it, p99 is most of it
    assert fixed_ms["p90"] > 50 and fixed_ms["p99"] > 200
    assert closed_ms["p90"] < 50  # 8 requests in flight saw the stall among thousands
    assert closed_ms["max"] > 250  # (the stall did happen in the closed-loop run too)


def test_load_rate_needs_a_positive_rate_and_the_pipeline_mode() -> None:
    for bad in (0, -5, math.nan, math.inf):
        with pytest.raises(ValueError, match="positive number"):
            LoadConfig("127.0.0.1", 1, rate=bad)
    with pytest.raises(ValueError, match="pipeline"):
        LoadConfig("127.0.0.1", 1, rate=10, mode="connect-per-request")


def _result(
    latencies_ms: list[float], errors: dict[str, int] | None = None, duration: float = 1.0
) -> LoadResult:
    hist = LatencyHistogram()
    for ms in latencies_ms:
        hist.add(int(ms * 1e6))
    return LoadResult(
        "h", 1, "pipeline", 1, 1, duration, len(latencies_ms), len(latencies_ms), errors or {}, hist
    )


def test_thresholds_name_every_limit_missed_and_pass_when_met() -> None:
    result = _result([1.0] * 990 + [20.0] * 9 + [100.0], {"timeout": 3})
    assert result.latency_ms()["p99"] == pytest.approx(1.0, rel=0.02)
    assert result.latency_ms()["p99.9"] == pytest.approx(20.0, rel=0.02)
    assert Thresholds(max_p99_ms=2, max_p999_ms=25, max_errors=3, min_rps=1000).missed(result) == []
    missed = Thresholds(max_p99_ms=0.5, max_p999_ms=10, max_errors=2, min_rps=1001).missed(result)
    assert [line.split()[0] for line in missed] == ["--max-p99", "--max-p999", "--max-errors", "--min-rps"]
    assert Thresholds(max_p99_ms=5).missed(_result([])) == ["--max-p99 5 ms: no answer, so no p99 latency"]
    with pytest.raises(ValueError):
        Thresholds(max_errors=-1)


def test_cli_load_exits_1_and_says_which_threshold_was_missed(
    reference_server: tuple[str, int], capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = reference_server
    argv = ["load", host, str(port), "-c", "2", "-d", "2", "--duration", "0.4", "--warmup", "0", "--quiet"]
    assert main([*argv, "--rate", "200", "--max-p99", "0.000001", "--min-rps", "1000000"]) == 1
    out = capsys.readouterr().out
    assert "threshold missed: --max-p99 1e-06 ms: p99 was" in out
    assert "threshold missed: --min-rps 1e+06" in out
    assert main([*argv, "--max-p99", "10000", "--max-p999", "10000", "--max-errors", "0"]) == 0
    assert "threshold missed" not in capsys.readouterr().out


def test_cli_load_writes_csv_and_json_files(
    reference_server: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host, port = reference_server
    csv_path, json_path = tmp_path / "load.csv", tmp_path / "load.json"
    argv = ["load", host, str(port), "-c", "2", "-d", "2", "--duration", "1.3", "--warmup", "0", "--quiet"]
    assert (
        main([*argv, "--rate", "300", "--csv", str(csv_path), "--json", str(json_path), "--max-p999", "1e9"])
        == 0
    )
    assert "latency (from the intended send time)" in capsys.readouterr().out  # the summary still prints
    rows = [line.split(",") for line in csv_path.read_text().splitlines()]
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [r[1] for r in rows[1:]] == ["measuring"] * (len(rows) - 2) + ["total"] and len(rows) >= 3
    total = dict(zip(CSV_COLUMNS, rows[-1], strict=True))
    data = json.loads(json_path.read_text())
    assert int(total["answers"]) == data["answers"] > 0
    assert float(total["p999_ms"]) == pytest.approx(data["latency_ms"]["p99.9"], abs=1e-3)
    assert data["rate"] == 300 and data["thresholds_missed"] == [] and data["waiting"] == 0
    lat = data["latency_ms"]
    assert lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]


def test_cli_load_refuses_bad_rates_and_thresholds_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--rate", "0"], ["--max-errors", "-1"], ["--max-p99", "nan"]):
        assert main(["load", "127.0.0.1", "1", *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("harness load: ") and err.count("\n") == 1
