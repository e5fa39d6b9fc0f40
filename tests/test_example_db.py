"""HARNESS_EXAMPLE_DB: failing examples shared through a real Redis (harness/exampledb.py).

A redis-server is started on 127.0.0.1 and a free port (no persistence), and stopped after.
One process finds and shrinks a failure; another, in a clean working directory, must
replay that failure as its very first example. Without the shared database (or with
Redis down and no local copy), the second process starts from scratch: the checks can fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.database import DirectoryBasedExampleDatabase, MultiplexedDatabase

from harness._extras import MissingExtra
from harness.exampledb import ENV_VAR, KEY_PREFIX, TolerantDatabase, example_database

REDIS_SERVER = shutil.which("redis-server")
needs_redis = pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")

#: The failing property: the shrunk counterexample is exactly THRESHOLD. Every example
#: tried is appended to calls.jsonl in the working directory, in order.
SCRIPT = textwrap.dedent(
    """
    import json, sys
    from hypothesis import given, settings, strategies as st
    from harness.exampledb import example_database

    THRESHOLD = 1000

    @settings(database=example_database(), max_examples=500, deadline=None, derandomize=False)
    @given(st.integers(min_value=0, max_value=10**9))
    def test_small(x):
        with open("calls.jsonl", "a") as out:
            out.write(json.dumps(x) + "\\n")
        assert x < THRESHOLD

    try:
        test_small()
    except AssertionError:
        sys.exit(1)
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    assert REDIS_SERVER is not None
    port = _free_port()
    proc = subprocess.Popen(
        [
            REDIS_SERVER,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            assert proc.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer PING within 10 s"
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(directory: Path, url: str | None) -> tuple[int, list[int]]:
    """Run SCRIPT in ``directory`` (its own .hypothesis/); its exit status and the examples it tried."""
    directory.mkdir(exist_ok=True)
    (directory / "prop.py").write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, "HYPOTHESIS_PROFILE")}
    if url is not None:
        env[ENV_VAR] = url
    done = subprocess.run(
        [sys.executable, "prop.py"], cwd=directory, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode in (0, 1), done.stderr
    calls = [json.loads(line) for line in (directory / "calls.jsonl").read_text().splitlines()]
    (directory / "calls.jsonl").unlink()
    return done.returncode, calls


@needs_redis
def test_failure_found_by_one_process_is_replayed_first_by_another(tmp_path: Path, redis_url: str) -> None:
    status, calls = _run(tmp_path / "first", redis_url)
    assert status == 1
    assert calls[0] != 1000, "the first process must find the failure itself"
    assert 1000 in calls

    status, calls = _run(tmp_path / "second", redis_url)  # a clean working directory
    assert status == 1
    assert calls[0] == 1000, f"the shared failure must be replayed first, tried {calls[:5]}"
    # and the replayed failure is now in the second directory's local database too
    assert any((tmp_path / "second" / ".hypothesis" / "examples").iterdir())


@needs_redis
def test_without_the_shared_database_a_clean_directory_starts_from_scratch(
    tmp_path: Path, redis_url: str
) -> None:
    status, _ = _run(tmp_path / "first", redis_url)
    assert status == 1
    status, calls = _run(tmp_path / "second", None)  # local database only: nothing to replay
    assert status == 1
    assert calls[0] != 1000


def test_with_redis_down_the_local_directory_still_replays(tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    status, calls = _run(tmp_path / "here", dead)
    assert status == 1
    assert calls[0] != 1000
    status, calls = _run(tmp_path / "here", dead)  # same directory: the local copy replays
    assert status == 1
    assert calls[0] == 1000
    status, calls = _run(tmp_path / "elsewhere", dead)  # nothing shared, nothing local
    assert calls[0] != 1000


def test_example_database_reads_the_environment(tmp_path: Path) -> None:
    local = tmp_path / "examples"
    assert example_database({}, local=local) == DirectoryBasedExampleDatabase(str(local))
    assert example_database({ENV_VAR: " "}, local=local) == DirectoryBasedExampleDatabase(str(local))
    shared = example_database({ENV_VAR: "redis://127.0.0.1:1/3"}, local=local)
    assert isinstance(shared, MultiplexedDatabase)
    directory, redis_side = shared._wrapped
    assert directory == DirectoryBasedExampleDatabase(str(local))
    assert isinstance(redis_side, TolerantDatabase)
    with pytest.raises(ValueError, match="expected a redis:// URL") as info:
        example_database({ENV_VAR: "postgres://db/1"}, local=local)
    assert "\n" not in str(info.value)


def test_redis_url_without_the_redis_package_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis -> ModuleNotFoundError
    with pytest.raises(MissingExtra, match=r"lpjson-harness\[redis\]"):
        example_database({ENV_VAR: "redis://127.0.0.1:1/0"}, local=tmp_path)


@needs_redis
def test_live_fuzzer_failure_replays_first_in_a_clean_directory_through_redis(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``harness fuzz server`` keeps its failures in example_database(): one run's finding,
    shared through Redis, is the first case of a run with a local database of its own."""
    from harness.cli import main
    from tests.zoo import ZOO

    monkeypatch.setenv("HARNESS_EXAMPLE_DB", redis_url)
    command = [sys.executable, str(ZOO["peer_codec_streams"].path), "{host}", "{port}"]

    def run(where: str, seed: str) -> tuple[int, str]:
        code = main(
            [
                "fuzz",
                "server",
                "--quiet",
                "--max-time",
                "40",
                "--seed",
                seed,
                "--out",
                str(tmp_path / where / "out"),
                "--db",
                str(tmp_path / where / "db"),
                "--",
                *command,
            ]
        )
        return code, capsys.readouterr().out

    code, first = run("first", "0")
    assert code == 1, first
    code, second = run("second", "7")  # a clean local database, another seed
    assert code == 1, second
    assert "(case 1)" in second, second


def test_live_fuzzer_refuses_an_example_db_that_is_not_redis_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from harness.cli import main

    monkeypatch.setenv("HARNESS_EXAMPLE_DB", "postgres://127.0.0.1/0")
    code = main(["fuzz", "server", "--max-time", "5", "--db", str(tmp_path / "db")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "expected a redis:// URL" in err


@needs_redis
def test_decoder_suite_shares_its_failing_examples_through_redis(
    redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """harness.testing.check_decoder saves a failure of a user's decoder where a teammate's
    run (a clean checkout, another machine) finds it: in Redis, under harness's key prefix.
    (A decoder whose bug only a generated stream shows: the suite's fixed examples are not
    saved, being tried every run anyway.)"""
    import redis
    from hypothesis import settings

    from harness.testing import DecoderCheckFailure, check_decoder
    from tests.decoders.drops_second import factory

    monkeypatch.setenv("HARNESS_EXAMPLE_DB", redis_url)
    monkeypatch.chdir(tmp_path)
    client = redis.Redis.from_url(redis_url)
    assert not client.keys(KEY_PREFIX + b"*")
    with pytest.raises(DecoderCheckFailure):
        check_decoder(factory, settings=settings(max_examples=30, derandomize=False))
    assert client.keys(KEY_PREFIX + b"*"), "the failing examples reached Redis"
