"""``harness serve`` and ``harness request`` as users run them: subprocesses, real signals."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from server_helpers import connect, expected_response, read_messages, search

from harness import Decoder, ReferenceServer
from harness.cli import main

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_serve(*options: str) -> tuple[subprocess.Popen[bytes], tuple[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "serve", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    match = re.fullmatch(r"Listening on (127\.0\.0\.1):(\d+)\n", line)
    if not match:
        proc.kill()
        raise AssertionError(f"first line {line!r}; stderr {proc.communicate(timeout=5)[1]!r}")
    return proc, (match.group(1), int(match.group(2)))


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_request(*args: str) -> Result:
    """``harness request ARGS`` in this process (the subprocess test below covers the real thing)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["request", *args])
    return Result(code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    with ReferenceServer() as srv:
        yield srv


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_signal_stops_accepting_flushes_and_exits_zero(signum: signal.Signals) -> None:
    proc, address = start_serve("--log-level", "info")
    try:
        requests = [search(str(i)) for i in range(500)]
        with connect(address) as sock:
            sock.sendall(b"".join(m.encode() for m in requests))
            # One decoder for both reads: the first recv may hold more than the first answer.
            decoder = Decoder(max_content_length=1 << 30)
            first = read_messages(sock, 1, decoder=decoder)  # the server is answering
            proc.send_signal(signum)
            rest = read_messages(sock, None, timeout=10, decoder=decoder)
        got = first.raw + rest.raw
        assert rest.closed
        assert got == b"".join(expected_response(m) for m in requests)
        assert proc.wait(15) == 0
        with pytest.raises(OSError):
            socket.create_connection(address, timeout=2).close()
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        assert "signal received: shutting down" in log
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_serve_refuses_a_port_in_use(server: ReferenceServer) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "serve", "--port", str(server.address[1])],
        capture_output=True,
        text=True,
        timeout=20,
        env=ENV,
    )
    assert result.returncode == 1
    assert "cannot listen on 127.0.0.1:" in result.stderr
    assert result.stdout == ""


def test_serve_rejects_bad_limits() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "harness", "serve", "--max-connections", "0"],
        capture_output=True,
        text=True,
        timeout=20,
        env=ENV,
    )
    assert result.returncode == 2
    assert "--max-connections" in result.stderr


def test_serve_applies_its_limits() -> None:
    proc, address = start_serve("--max-content-length", "100", "--max-connections", "1", "--loop", "asyncio")
    try:
        with connect(address) as sock:
            sock.sendall(search("x" * 200).encode())
            reading = read_messages(sock, None)
            assert [m.json()["error"] for m in reading.messages] == ["content-too-large"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        assert "(asyncio; max-content-length 100," in proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


@pytest.mark.parametrize(
    ("action", "value", "printed"),
    [
        ("search", "morpheus", "Follow the white rabbit. 🐰"),
        ("search", "ring", "In the caves beneath the Misty Mountains. 💍"),
        ("search", "🐶", "🐾 Playing ball! 🏐"),
        ("search", "needle", "No match for 'needle'."),
        ("binary", "😃", repr(b"First 10 bytes of request: binary\xf0\x9f\x98\x83")),
    ],
)
def test_request_prints_the_result(server: ReferenceServer, action: str, value: str, printed: str) -> None:
    host, port = server.address
    result = run_request(host, str(port), action, value)
    assert result.returncode == 0, result.stderr
    assert result.stdout == printed + "\n"


def test_request_subprocess_against_harness_serve_prints_the_morpheus_answer() -> None:
    proc, (host, port) = start_serve()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "harness", "request", host, str(port), "search", "morpheus"],
            capture_output=True,
            text=True,
            timeout=20,
            env=ENV,
        )
        assert (result.returncode, result.stdout, result.stderr) == (0, "Follow the white rabbit. 🐰\n", "")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0


def test_request_refused_connection_is_one_clear_line() -> None:
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_request("127.0.0.1", str(port), "search", "morpheus")
    assert result.returncode == 1
    assert (
        result.stderr
        == f"harness request: connection to 127.0.0.1:{port} refused (is a server listening there?)\n"
    )


def test_request_timeout_is_one_clear_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts (backlog), never answers
        port = silent.getsockname()[1]
        result = run_request("127.0.0.1", str(port), "search", "morpheus", "--timeout", "0.5")
    assert result.returncode == 1
    assert result.stderr.startswith("harness request: timed out: no response from 127.0.0.1:")
    assert result.stderr.count("\n") == 1


def test_request_protocol_error_in_the_response_is_one_clear_line() -> None:
    with socket.create_server(("127.0.0.1", 0)) as liar:
        port = liar.getsockname()[1]

        def lie() -> None:
            liar.settimeout(10)
            conn, _ = liar.accept()
            with conn:
                conn.recv(1000)
                conn.sendall(b"\x00\x00garbage")

        thread = threading.Thread(target=lie)
        thread.start()
        result = run_request("127.0.0.1", str(port), "search", "x")
        thread.join(10)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"harness request: the response from 127.0.0.1:{port} breaks the protocol: zero-header-length"
    )
    assert result.stderr.count("\n") == 1


def test_request_error_message_from_the_server_is_reported(server: ReferenceServer) -> None:
    with ReferenceServer(max_connections=1) as small, connect(small.address) as hog:
        hog.sendall(search("ring").encode())
        read_messages(hog, 1)
        result = run_request(*map(str, small.address), "search", "ring")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "harness request: the server answered with an error: too-many-connections"
    )


def test_request_argument_that_is_not_utf8(server: ReferenceServer) -> None:
    host, port = map(str, server.address)
    # argv bytes that are not UTF-8 reach Python as surrogate escapes: binary content gets the
    # bytes as given; a search value must be text, so it is one clear line, not a traceback.
    binary = run_request(host, port, "bin", "\udcff")
    assert binary.returncode == 0, binary.stderr
    assert binary.stdout == repr(b"First 10 bytes of request: bin\xff") + "\n"
    search_result = run_request(host, port, "search", "\udcff")
    assert search_result.returncode == 2
    assert search_result.stderr.startswith("harness request: cannot send '\\udcff' as a search: ")
    assert search_result.stderr.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [
        ["request", "127.0.0.1", "70000", "search", "x"],
        ["request", "127.0.0.1", "80", "search", "x", "--timeout", "-1"],
        ["request", "127.0.0.1", "80", "search", "x", "--timeout", "nan"],
        ["serve", "--port", "-1"],
        ["serve", "--idle-timeout", "-5"],
    ],
)
def test_cli_usage_errors_exit_2_before_touching_the_network(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"harness {args[0]}: argument ") and err.count("\n") == 1, err
