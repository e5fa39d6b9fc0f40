"""harness.supervise: start, watch and stop a server under test, with small throwaway servers.

Each server is a script written into tmp_path (standard library only) and run with this
interpreter; the one in ``SERVER`` answers one request per connection and misbehaves on
the requests named in it.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.supervise import (
    MiB,
    ServerStartError,
    ServerUnderTest,
    describe_status,
    find_free_port,
    parse_tracebacks,
)

pytestmark = pytest.mark.timeout(60)

SERVER = """
import os, signal, socket, subprocess, sys, time, traceback

host, port, flags = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
if "--ignore-term" in flags:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if "--with-child" in flags:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    print(f"child {child.pid}", flush=True)
print(f"argv {sys.argv[1:]}")
hoard = []
listener = socket.create_server((host, port))  # (SO_REUSEADDR, as the guide's server)
print("listening", file=sys.stderr)
while True:
    conn, _ = listener.accept()
    with conn:
        request = conn.recv(1024)
        if request == b"crash":
            print("about to fail", file=sys.stderr)
            raise KeyError("value")
        elif request == b"oops":
            try:
                {}["value"]
            except KeyError:
                traceback.print_exc()
            conn.sendall(b"sorry")
        elif request == b"grow":
            hoard.append(b"x" * (100 << 20))
            conn.sendall(b"grown")
        elif request == b"vanish":
            os.kill(os.getpid(), signal.SIGKILL)
        elif request == b"spam":
            for i in range(1000):
                print(f"spam {i}")
            conn.sendall(b"done")
        else:
            print(f"got {request!r}")
            conn.sendall(request)
"""


def script(tmp_path: Path, source: str, name: str = "server.py") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return str(path)


def ask(address: tuple[str, int], request: bytes) -> bytes:
    """Send one request, read until the server closes."""
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def children_of_this_process() -> list[tuple[int, str]]:
    """(pid, state) of every child of this process, zombies included."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid():
            found.append((int(entry), fields[0]))
    return found


def pid_exists(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def server_script(tmp_path: Path) -> str:
    return script(tmp_path, SERVER)


@pytest.fixture
def server(server_script: str) -> Iterator[ServerUnderTest]:
    with ServerUnderTest([sys.executable, server_script, "{host}", "{port}"], start_timeout=15) as srv:
        yield srv


def test_supervise_starts_serves_and_stops_with_sigterm(server_script: str) -> None:
    server = ServerUnderTest([sys.executable, server_script, "{host}", "{port}"])
    assert not server.alive and server.returncode is None
    with server:
        assert server.alive and server.returncode is None
        assert server.port != 0
        mark = server.mark()
        assert ask(server.address, b"ping") == b"ping"
        server.settle(quiet=0.02)
        assert "got b'ping'" in [line.text for line in server.since(mark) if line.stream == "stdout"]
        assert server.tracebacks_since(mark) == []
        assert server.died_since(mark) is None
    assert not server.alive
    assert server.returncode == -signal.SIGTERM
    assert server.died_since(mark) is None  # stopped on purpose: not a death
    assert server.stop() == -signal.SIGTERM  # a second stop does nothing


def test_supervise_substitutes_host_and_port_in_every_argument(server_script: str) -> None:
    port = find_free_port()
    command = [sys.executable, server_script, "{host}", "{port}", "--name={host}:{port}", "{{port}}"]
    server = ServerUnderTest(command, port=port)
    start = server.mark()  # (before the start: everything it prints)
    with server:
        expected = ["127.0.0.1", str(port), f"--name=127.0.0.1:{port}", f"{{{port}}}"]
        assert server.argv[2:] == expected
        assert server.address == ("127.0.0.1", port)
        assert ask(server.address, b"hi") == b"hi"
        server.settle(quiet=0.02)
        printed = [line.text for line in server.since(start)]
        assert f"argv {expected}" in printed


def test_supervise_start_fails_in_bound_when_server_never_listens(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        """
        import sys, time
        print("loading the model", file=sys.stderr)
        sys.stderr.write("warming up")  # (no newline: still reported)
        sys.stderr.flush()
        time.sleep(60)
        """,
    )
    server = ServerUnderTest([sys.executable, path, "{port}"], start_timeout=1.0)
    began = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        server.start()
    assert time.monotonic() - began < 5
    message = str(caught.value)
    headline = message.splitlines()[0]
    assert f"accepted no connection on 127.0.0.1:{server.port} within 1 s" in headline
    assert "still running" in headline
    assert caught.value.returncode is None
    assert caught.value.stderr_tail == ("loading the model", "warming up")
    assert message.endswith("| loading the model\n  | warming up")
    assert not server.alive
    assert children_of_this_process() == []


def test_supervise_start_fails_with_exit_status_when_server_exits_at_once(tmp_path: Path) -> None:
    lines = "".join(f"print('config line {i}', file=sys.stderr)\n" for i in range(30))
    path = script(
        tmp_path, f"import sys\n{lines}print('fatal: no such file: app.toml', file=sys.stderr)\nsys.exit(3)\n"
    )
    server = ServerUnderTest([sys.executable, path], start_timeout=10)
    began = time.monotonic()
    with pytest.raises(ServerStartError) as caught:
        server.start()
    assert time.monotonic() - began < 5  # it did not wait for the whole start_timeout
    headline = str(caught.value).splitlines()[0]
    assert f"exited with status 3 before accepting connections on 127.0.0.1:{server.port}" in headline
    assert caught.value.returncode == 3
    tail = caught.value.stderr_tail
    assert tail is not None and len(tail) == 20
    assert tail[-1] == "fatal: no such file: app.toml"
    assert server.returncode == 3


def test_supervise_start_fails_clearly_when_program_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError, match=r"^cannot run `.*no-such-server \d+`: No such file") as caught:
        ServerUnderTest([str(tmp_path / "no-such-server"), "{port}"]).start()
    assert "\n" not in str(caught.value)
    assert caught.value.stderr_tail is None


def test_supervise_reports_crash_with_status_and_traceback_then_restarts(server: ServerUnderTest) -> None:
    port, first_pid = server.port, server.pid
    mark = server.mark()
    assert ask(server.address, b"crash") == b""
    death = server.died_since(mark, wait=5.0)
    assert death is not None
    assert death.returncode == 1
    assert death.summary == "exited with status 1 after it raised KeyError: 'value'"
    assert "about to fail" in death.stderr_tail
    assert death.stderr_tail[-1] == "KeyError: 'value'"
    assert [tb.summary for tb in server.tracebacks_since(mark)] == ["raised KeyError: 'value'"]
    seen = server.observe(mark)
    assert seen.unsafe
    assert seen.problems == ("the server exited with status 1 after it raised KeyError: 'value'",)
    assert not server.alive

    server.restart()
    assert server.alive and server.port == port and server.pid != first_pid
    again = server.mark()
    assert ask(server.address, b"ping") == b"ping"
    assert server.died_since(again) is None
    assert server.died_since(mark) == death  # the earlier run's death is still known


def test_supervise_reports_death_by_signal(server: ServerUnderTest) -> None:
    mark = server.mark()
    assert ask(server.address, b"vanish") == b""
    death = server.died_since(mark, wait=5.0)
    assert death is not None and death.returncode == -signal.SIGKILL
    assert death.summary == "was killed by SIGKILL"
    assert describe_status(-signal.SIGSEGV) == "was killed by SIGSEGV"
    server.start()  # (no stop() needed after a death)
    assert ask(server.address, b"ping") == b"ping"


def test_supervise_finds_traceback_of_server_that_survives(server: ServerUnderTest) -> None:
    mark = server.mark()
    assert ask(server.address, b"oops") == b"sorry"
    seen = server.observe(mark)
    assert seen.death is None and not seen.unsafe and server.alive
    assert [tb.summary for tb in seen.tracebacks] == ["raised KeyError: 'value'"]
    assert seen.tracebacks[0].stream == "stderr"
    assert seen.tracebacks[0].exception_type == "KeyError"
    assert seen.tracebacks[0].lines[0] == "Traceback (most recent call last):"
    assert seen.problems == ("the server raised KeyError: 'value'",)
    server.allow_tracebacks = True
    assert server.observe(mark).problems == ()

    later = server.mark()
    assert ask(server.address, b"ping") == b"ping"
    assert server.tracebacks_since(later) == []
    assert server.observe(later).problems == ()


def test_supervise_rss_sampler_flags_growth_over_limit_only(server: ServerUnderTest) -> None:
    assert server.rss() > 1 * MiB
    with server.rss_sampler() as calm:
        assert ask(server.address, b"ping") == b"ping"
    assert calm.result is not None
    assert calm.result.growth < server.rss_limit and not calm.result.over_limit

    mark = server.mark()
    with server.rss_sampler() as sampler:
        assert ask(server.address, b"grow") == b"grown"
    sample = sampler.result
    assert sample is not None
    assert sample.growth > 90 * MiB and sample.over_limit
    assert sample.peak >= sample.baseline + sample.growth
    assert "limit 64 MiB" in sample.summary
    seen = server.observe(mark, rss=sample)
    assert seen.unsafe and seen.death is None
    assert seen.problems == (f"the server's {sample.summary}",)


def test_supervise_stop_kills_a_server_that_ignores_sigterm(server_script: str) -> None:
    server = ServerUnderTest([sys.executable, server_script, "{host}", "{port}", "--ignore-term"])
    server.start()
    began = time.monotonic()
    assert server.stop(timeout=0.5) == -signal.SIGKILL
    assert time.monotonic() - began < 3
    assert children_of_this_process() == []


def test_supervise_stop_takes_down_the_server_children(server_script: str) -> None:
    server = ServerUnderTest([sys.executable, server_script, "{host}", "{port}", "--with-child"])
    start = server.mark()
    with server:
        server.settle(quiet=0.02)
        child = int(
            next(line.text.split()[1] for line in server.since(start) if line.text.startswith("child"))
        )
        assert pid_exists(child)
        assert server.rss() > 0
    deadline = time.monotonic() + 5
    while pid_exists(child) and time.monotonic() < deadline:  # (reaped by init, not by us)
        time.sleep(0.02)
    assert not pid_exists(child)


def test_supervise_output_buffers_are_bounded(server_script: str) -> None:
    command = [sys.executable, server_script, "{host}", "{port}"]
    with ServerUnderTest(command, output_lines=50) as server:
        mark = server.mark()
        assert ask(server.address, b"spam") == b"done"
        server.settle(quiet=0.05)
        lines = server.since(mark)
        assert len(lines) <= 50
        assert lines[-1].text == "spam 999"
        assert [line.seq for line in lines] == sorted(line.seq for line in lines)


def test_supervise_leaves_no_zombie_fd_or_thread_after_many_cycles(
    server_script: str, tmp_path: Path
) -> None:
    failing = script(tmp_path, "import sys\nprint('bad', file=sys.stderr)\nsys.exit(2)\n", "failing.py")
    command = [sys.executable, server_script, "{host}", "{port}"]
    with ServerUnderTest(command):  # (warm-up: lazy imports and caches)
        pass
    fds = len(os.listdir("/proc/self/fd"))
    threads = threading.active_count()
    server = ServerUnderTest(command)
    for _ in range(8):
        server.start()
        with server.rss_sampler():
            assert ask(server.address, b"x") == b"x"
        server.rss_sampler().start()  # left running: stop() must end it
        server.stop()
    with server:
        mark = server.mark()
        ask(server.address, b"crash")
        assert server.died_since(mark, wait=5.0) is not None
        server.restart()
    for _ in range(3):
        with pytest.raises(ServerStartError):
            ServerUnderTest([sys.executable, failing]).start()
    assert children_of_this_process() == []
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads


def _formatted(exc: BaseException) -> list[str]:
    return "".join(traceback.format_exception(exc)).splitlines()


def _raise(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_parse_tracebacks_summarises_each_block_with_its_final_exception() -> None:
    def chained() -> None:
        try:
            {"key": 1}["value"]
        except KeyError as exc:
            raise ValueError("bad value") from exc

    try:
        chained()
    except ValueError as exc:
        chain = _formatted(exc)
    group = _formatted(_raise(ExceptionGroup("many", [ValueError("a"), TypeError("b")])))
    plain = _formatted(_raise(KeyError("value")))
    lines = [
        "serving on 127.0.0.1:5000",
        *plain,
        "a line from another part of the server",
        "Exception in thread Thread-1 (handle):",
        *plain[:2],
        "interleaved log line from another thread",
        *plain[2:],
        *chain,
        *group,
        "----------------------------------------",
        "Traceback (most recent call last):",
        '  File "server.py", line 3, in <module>',
    ]
    found = parse_tracebacks(lines)
    assert [exception for _, _, exception in found] == [
        "KeyError: 'value'",
        "KeyError: 'value'",
        "ValueError: bad value",
        "ExceptionGroup: many (2 sub-exceptions)",
        "",  # cut off before its exception line
    ]
    assert found[0][1] == tuple(plain)
    assert "interleaved log line from another thread" not in found[1][1]
    assert "The above exception was the direct cause of the following exception:" in found[2][1]
    assert any("TypeError: b" in line for line in found[3][1])
    assert lines[found[0][0]] == "Traceback (most recent call last):"
