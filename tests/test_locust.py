"""The lpjson locustfile (harness/load/locust.py) run by the real Locust, in subprocesses.

Against ``harness serve`` (started here on port 0): a headless master with two local
workers, and a single process, with no failures; the hostile user classes against a
server with limits (no failures) and against zoo servers missing each limit (failures).
Locust monkey-patches the standard library when imported, so it never runs in this process.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness._extras import MissingExtra, installed
from harness.commands.locust import locustfile_path
from tests.zoo import ZOO

# found, never imported: importing locust monkey-patches this process's standard library
LOCUST = shutil.which("locust", path=str(Path(sys.executable).parent)) if installed("locust") else None
needs_locust = pytest.mark.skipif(LOCUST is None, reason="locust is not installed (the locust extra)")


@contextlib.contextmanager
def listening(argv: list[str]) -> Iterator[str]:
    """Start a server that prints ``Listening on HOST:PORT`` first; yield ``tcp://HOST:PORT``."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the server prints it at once; a dead one gives ""
        match = re.match(r"Listening on (\S+):(\d+)", line)
        assert match, f"no 'Listening on' line: {line!r}"
        yield f"tcp://{match.group(1)}:{match.group(2)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve(*flags: str) -> contextlib.AbstractContextManager[str]:
    return listening([sys.executable, "-m", "harness", "serve", "--port", "0", *flags])


def locust(*args: str, timeout: float = 60) -> dict[tuple[str, str], tuple[int, int]]:
    """Run locust headless with --json: {(request_type, name): (requests, failures)}."""
    assert LOCUST is not None
    done = subprocess.run(
        [
            LOCUST,
            "-f",
            str(locustfile_path()),
            "--headless",
            "--json",
            "--only-summary",
            "--loglevel",
            "INFO",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode in (0, 1), done.stderr[-3000:]
    rows = json.loads(done.stdout)
    return {(e["method"], e["name"]): (e["num_requests"], e["num_failures"]) for e in rows}


def test_without_locust_the_path_still_prints_and_one_line_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['locust'] = None; from harness.cli import main; "
        "sys.exit(main(['locust', 'path']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0
    assert Path(done.stdout.strip()) == locustfile_path()
    assert done.stderr == ("harness: the locustfile needs locust: pip install 'lpjson-harness[locust]'\n")


def test_importing_the_locustfile_without_locust_raises_missing_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "locust", None)
    monkeypatch.delitem(sys.modules, "harness.load.locust", raising=False)
    with pytest.raises(MissingExtra, match=r"pip install 'lpjson-harness\[locust\]'"):
        importlib.import_module("harness.load.locust")


def test_locust_path_prints_the_installed_locustfile() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "locust", "path"], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0
    path = Path(done.stdout.strip())
    assert path == locustfile_path() and path.is_file()
    assert "class LpjsonUser(" in path.read_text()


@needs_locust
def test_single_process_headless_run_has_no_failures_and_only_well_behaved_users() -> None:
    with serve() as host:
        stats = locust("--host", host, "-u", "4", "-r", "4", "-t", "3s")
    assert set(stats) == {("lpjson", "search"), ("lpjson", "binary")}  # no hostile class by default
    for requests, failures in stats.values():
        assert requests > 0 and failures == 0, stats


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.slow
@needs_locust
def test_master_with_two_workers_counts_requests_from_both_and_no_failures(tmp_path: Path) -> None:
    assert LOCUST is not None
    port = str(_free_port())  # the master's port for its workers (Locust takes no port 0 there)
    with serve() as host:
        master = subprocess.Popen(
            [
                LOCUST,
                "-f",
                str(locustfile_path()),
                "--master",
                "--master-bind-host",
                "127.0.0.1",
                "--master-bind-port",
                port,
                "--headless",
                "--expect-workers",
                "2",
                "--expect-workers-max-wait",
                "30",
                "-u",
                "20",
                "-r",
                "20",
                "-t",
                "10s",
                "--host",
                host,
                "--csv",
                str(tmp_path / "run"),
                "--only-summary",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        workers = [
            subprocess.Popen(
                [
                    LOCUST,
                    "-f",
                    str(locustfile_path()),
                    "--worker",
                    "--master-host",
                    "127.0.0.1",
                    "--master-port",
                    port,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(2)
        ]
        try:
            _, log = master.communicate(timeout=90)
            for worker in workers:
                worker.wait(timeout=30)  # the master's quit message stops them
        finally:
            for proc in [master, *workers]:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    assert master.returncode == 0, log[-3000:]
    rows = {row["Name"]: row for row in _csv(tmp_path / "run_stats.csv")}
    assert int(rows["Aggregated"]["Request Count"]) > 0
    assert int(rows["Aggregated"]["Failure Count"]) == 0, rows
    assert int(rows["search"]["Request Count"]) > 0 and int(rows["binary"]["Request Count"]) > 0
    match = re.search(r"lpjson requests by worker: (.*)", log)
    assert match, log[-3000:]
    counts = [int(part.rsplit(" ", 1)[1]) for part in match.group(1).split(", ")]
    assert len(counts) == 2 and all(n > 0 for n in counts), match.group(0)


def _csv(path: Path) -> list[dict[str, str]]:
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


HOSTILE = ["LpjsonUser", "SlowSender", "NeverReader", "HugeLength"]


@needs_locust
def test_hostile_classes_see_a_server_with_limits_defend_itself() -> None:
    with serve("--idle-timeout", "1") as host:
        stats = locust(
            "--host",
            host,
            "-u",
            "8",
            "-r",
            "8",
            "-t",
            "5s",
            "--lpjson-slow-deadline",
            "4",
            "--lpjson-hold",
            "1",
            *HOSTILE,
        )
    for key in [
        ("slow-sender", "cut off"),
        ("never-reader", "pushed back"),
        ("huge-length", "refused"),
        ("lpjson", "search"),
    ]:
        requests, failures = stats.get(key, (0, 0))
        assert requests > 0 and failures == 0, (key, stats)


@needs_locust
@pytest.mark.parametrize(
    ("zoo", "user", "key"),
    [
        ("no_idle_timeout_streams", "SlowSender", ("slow-sender", "cut off")),
        ("no_length_limit_threads", "HugeLength", ("huge-length", "refused")),
        ("unbounded_buffer_protocol", "NeverReader", ("never-reader", "pushed back")),
        ("pipeline_drop_selectors", "LpjsonUser", ("lpjson", "search")),
    ],
)
def test_each_user_class_fails_on_the_server_missing_its_defence(
    zoo: str, user: str, key: tuple[str, str]
) -> None:
    with listening(ZOO[zoo].command("127.0.0.1", "0")) as host:
        stats = locust(
            "--host",
            host,
            "-u",
            "2",
            "-r",
            "2",
            "-t",
            "5s",
            "--lpjson-slow-deadline",
            "2",
            "--lpjson-slow-interval",
            "0.2",
            "--lpjson-timeout",
            "1",
            user,
        )
    assert stats.get(key, (0, 0))[1] > 0, (key, stats)


@needs_locust
def test_correct_zoo_server_passes_the_well_behaved_user() -> None:
    with listening(ZOO["correct_threads"].command("127.0.0.1", "0")) as host:
        stats = locust("--host", host, "-u", "2", "-r", "2", "-t", "3s")
    assert stats[("lpjson", "search")][0] > 0
    assert all(failures == 0 for _, failures in stats.values()), stats


@needs_locust
def test_bad_host_and_bad_option_say_so() -> None:
    stats = locust("--host", "http://127.0.0.1:1", "-u", "1", "-r", "1", "-t", "2s")
    assert stats[("lpjson", "connect")][1] > 0
    assert LOCUST is not None
    done = subprocess.run(
        [LOCUST, "-f", str(locustfile_path()), "--headless", "--lpjson-depth", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--lpjson-depth: must be >= 1" in done.stderr
    assert "Traceback" not in done.stderr
