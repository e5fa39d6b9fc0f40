"""The zoo of tests/zoo: every server is plausible, every bug is real, the correct ones conform.

Each server runs as the user would run it (``python tests/zoo/NAME.py 127.0.0.1 0``, in
a subprocess, killed at teardown) and is driven with plain sockets; harness only builds
the requests and decodes the answers. For every buggy server one hand-written exchange
shows its bug, and the same exchange against the correct server of its style (its
"twin", of which the buggy one is a copy with the bug put in) gives the right answer:
the difference is the bug, and nothing else.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from zoo import BUGGY, CORRECT, IDLE_TIMEOUT_ENV, NEVER_LISTENS, ZOO, ZooServer

from harness import Decoder, Message
from harness.connection import ServerConnection

HOST = "127.0.0.1"
START_BOUND = 10.0
MORPHEUS = {"result": "Follow the white rabbit. \U0001f430"}
_BYTEORDER = sys.byteorder

# -- running a server -----------------------------------------------------------------


@dataclass
class Running:
    """A zoo server started as a subprocess; its output is drained by threads."""

    server: ZooServer
    proc: subprocess.Popen[bytes]
    port: int = 0
    stdout: list[bytes] = field(default_factory=list)
    stderr: list[bytes] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return HOST, self.port

    def output(self) -> str:
        return (b"".join(self.stdout) + b"".join(self.stderr)).decode("utf-8", "replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def exited(self, bound: float) -> int | None:
        """The exit status once the process ends within ``bound`` seconds, else None."""
        try:
            return self.proc.wait(bound)
        except subprocess.TimeoutExpired:
            return None

    def rss_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status")
        if not status.exists():  # pragma: no cover - Linux has it
            pytest.skip("reads the server's memory from /proc")
        for line in status.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")  # pragma: no cover

    def wait_output(self, text: str, bound: float = 2.0) -> bool:
        deadline = time.monotonic() + bound
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            time.sleep(0.02)
        return text in self.output()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:  # pragma: no cover - SIGTERM is enough
                self.proc.kill()
                self.proc.wait(3)


def _drain(stream: Any, sink: list[bytes], first_line: queue.Queue[bytes] | None) -> None:
    if first_line is not None:
        line = stream.readline()
        sink.append(line)
        first_line.put(line)
    for chunk in iter(lambda: stream.read1(65536), b""):
        sink.append(chunk)


def start(server: ZooServer, idle_timeout: float | None = None) -> Running:
    env = dict(os.environ)
    if idle_timeout is not None:
        env[IDLE_TIMEOUT_ENV] = str(idle_timeout)
    proc = subprocess.Popen(
        server.command(HOST, "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    running = Running(server, proc)
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=_drain, args=(proc.stdout, running.stdout, lines), daemon=True).start()
    threading.Thread(target=_drain, args=(proc.stderr, running.stderr, None), daemon=True).start()
    try:
        line = lines.get(timeout=START_BOUND).decode()
    except queue.Empty:
        running.stop()
        raise AssertionError(
            f"{server.name}: no Listening line in {START_BOUND}s: {running.output()}"
        ) from None
    assert line.startswith(f"Listening on {HOST}:"), f"{server.name}: first line {line!r}"
    running.port = int(line.rsplit(":", 1)[1])
    assert running.port > 0
    return running


@pytest.fixture
def run() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def _run(name: str, idle_timeout: float | None = None) -> Running:
        running = start(ZOO[name], idle_timeout)
        started.append(running)
        return running

    yield _run
    for running in started:
        running.stop()


def twin(server: ZooServer) -> ZooServer:
    """The correct server of the same style (the buggy one is a copy of it with the bug put in)."""
    return next(other for other in CORRECT if other.style == server.style)


# -- talking to it ---------------------------------------------------------------------

Summary = tuple[Any, ...]


def summarize(message: Message) -> Summary:
    """An answer as ("result", text), ("error", code), ("json", value) or ("binary", bytes)."""
    if message.is_json:
        value = message.json()
        if isinstance(value, dict) and set(value) == {"error", "detail"}:
            return ("error", value["error"])
        if isinstance(value, dict) and set(value) == {"result"}:
            return ("result", value["result"])
        return ("json", value)
    return ("binary", message.content)


def connect(server: Running) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=3)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read(sock: socket.socket, count: int | None = None, bound: float = 1.5) -> tuple[list[Summary], str]:
    """Answers until ``count`` came (then 0.2 s more to see a close), the peer closed, or ``bound``.

    The end is "close", "reset" or "open" (nothing more before the bound).
    """
    decoder = Decoder(max_content_length=1 << 30)
    answers: list[Summary] = []
    deadline = time.monotonic() + bound
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return answers, "open"
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return answers, "open"
        except ConnectionResetError:
            return answers, "reset"
        if not data:
            return answers, "close"
        answers += [summarize(m) for m in decoder.feed(data)]
        if count is not None and len(answers) >= count:
            deadline = min(deadline, time.monotonic() + 0.2)


def exchange(
    server: Running,
    *chunks: bytes,
    pause: float = 0.1,
    count: int | None = None,
    bound: float = 1.5,
    half_close: bool = False,
) -> tuple[list[Summary], str]:
    """Send ``chunks`` ``pause`` seconds apart (each its own segment), then read the answers."""
    with connect(server) as sock:
        for i, chunk in enumerate(chunks):
            if i:
                time.sleep(pause)
            sock.sendall(chunk)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        return read(sock, count, bound)


def search(value: Any) -> bytes:
    return Message.from_json({"action": "search", "value": value}).encode()


def frame(header_text: str, content: bytes = b"") -> bytes:
    raw = header_text.encode("utf-8")
    return len(raw).to_bytes(2, "big") + raw + content


def header_text(length: int, **changes: Any) -> str:
    """A JSON header's text; ``changes`` replace values (raw JSON text, e.g. ``NaN``) or add keys."""
    values = {
        "byteorder": json.dumps(_BYTEORDER),
        "content-type": '"text/json"',
        "content-encoding": '"utf-8"',
        "content-length": str(length),
    }
    values.update({key.replace("_", "-"): value for key, value in changes.items()})
    return "{" + ", ".join(f'"{key}": {value}' for key, value in values.items()) + "}"


REQUEST = search("morpheus")
MORPHEUS_CONTENT = b'{"action": "search", "value": "morpheus"}'


# -- (a) every server is plausible ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_server_answers_search_morpheus(run: Callable[..., Running], name: str) -> None:
    server = run(name)
    with connect(server) as sock:
        sock.sendall(REQUEST)
        decoder = Decoder()
        messages: list[Message] = []
        while not messages:
            data = sock.recv(65536)
            assert data, f"{name} closed without answering: {server.output()}"
            messages = decoder.feed(data)
    (answer,) = messages
    assert answer.content_type == "text/json"
    assert answer.content_encoding == "utf-8"
    assert answer.json() == MORPHEUS
    assert server.alive()
    server.proc.terminate()
    assert server.exited(2.0) is not None, f"{name} ignored SIGTERM"


def test_zoo_table_matches_the_files() -> None:
    server_dir = CORRECT[0].path.parent
    files = {p.stem for p in server_dir.glob("*.py")} - {"__init__", "zoolib", NEVER_LISTENS.name}
    assert files == set(ZOO)
    assert len(BUGGY) >= 20 and len(CORRECT) >= 3
    assert len({s.style for s in CORRECT}) == len(CORRECT)
    readme = (server_dir / "README.md").read_text()
    for server in ZOO.values():
        assert f"| `{server.name}` |" in readme, server.name
        source = server.path.read_text()
        assert "harness" not in source.replace("docs/PROTOCOL.md", "")
        if not server.correct:
            assert f"Breaks: {server.rule}" in source, server.name
            assert twin(server)


def test_never_listens_stays_alive_and_silent() -> None:
    proc = subprocess.Popen(NEVER_LISTENS.command(HOST, "0"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=1.0)
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=3)
    assert out == b"" and err == b""


# -- (b) each bug, shown by one exchange ------------------------------------------------
#
# A demo sends one exchange and returns what it observed; the buggy server must show
# ``bug`` and its correct twin ``right``.


@dataclass(frozen=True)
class Demo:
    run: Callable[[Running], Any]
    bug: Any
    right: Any
    idle_timeout: float | None = None


def _split_in_header(server: Running) -> Any:
    return exchange(server, REQUEST[:20], REQUEST[20:], count=1, bound=1.0)


def _split_in_prefix(server: Running) -> Any:
    return exchange(server, REQUEST[:1], REQUEST[1:], count=1, bound=1.0)


def _split_in_content(server: Running) -> Any:
    return exchange(server, REQUEST[:-10], REQUEST[-10:], count=1, bound=1.0)


def _pipelined_two(server: Running) -> Any:
    return exchange(server, REQUEST + search("ring"), count=2, bound=1.0)


def _huge_length(server: Running) -> Any:
    header = header_text(
        1 << 40, content_type='"binary/custom-client-binary-type"', content_encoding='"binary"'
    )
    return exchange(server, frame(header), bound=1.2)


def _quiet_mid_request(server: Running) -> Any:
    return exchange(server, REQUEST[:30], bound=1.5)


def _memory_under_never_reads(server: Running) -> Any:
    """Whether RSS grows by 12 MiB while a client sends 24 MiB of requests and reads nothing."""
    before = server.rss_kib()
    block = search("needle") * 2000
    sent = 0
    with socket.socket() as sock:
        # A small receive buffer: the answers back up at once instead of filling megabytes
        # of kernel buffer first.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        sock.connect(server.address)
        sock.settimeout(0.5)
        # A server that keeps reading takes the 24 MiB in about a second on a quiet
        # machine; the bound is for a loaded one. One that stops reading ends the loop
        # at once (the send times out).
        deadline = time.monotonic() + 15.0
        try:
            while sent < 24 << 20 and time.monotonic() < deadline:
                sock.sendall(block)
                sent += len(block)
        except TimeoutError:
            pass  # backpressure: the server stopped reading
        time.sleep(0.3)
        grown = server.rss_kib() - before
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return grown > 12 << 10


def _memory_after_big_requests(server: Running) -> Any:
    """Whether RSS stays 20 MiB higher after 3 connections sent 10 requests of 1 MiB each."""
    before = server.rss_kib()
    request = Message.from_bytes(b"x" * (1 << 20)).encode()
    for _ in range(3):
        answers, _ = exchange(server, request * 10, count=10, bound=5.0)
        assert len(answers) == 10
    time.sleep(0.2)
    return server.rss_kib() - before > 20 << 10


def _duplicate_length(server: Running) -> Any:
    text = header_text(0)[:-1] + f', "content-length": {len(MORPHEUS_CONTENT)}}}'
    return exchange(server, frame(text, MORPHEUS_CONTENT), count=1)


def _nan_extension(server: Running) -> Any:
    return exchange(
        server, frame(header_text(len(MORPHEUS_CONTENT), x_weight="NaN"), MORPHEUS_CONTENT), count=1
    )


def _list_header(server: Running) -> Any:
    answers, end = exchange(server, frame("[1, 2]"), count=1)
    server.wait_output("Traceback", 0.5)
    return answers, end, "Traceback" in server.output()


def _float_length(server: Running) -> Any:
    text = header_text(0, content_length=f"{len(MORPHEUS_CONTENT)}.0")
    return exchange(server, frame(text, MORPHEUS_CONTENT), count=1)


def _byteorder_middle(server: Running) -> Any:
    return exchange(
        server, frame(header_text(len(MORPHEUS_CONTENT), byteorder='"middle"'), MORPHEUS_CONTENT), count=1
    )


def _base64_content(server: Running) -> Any:
    content = base64.b64encode(MORPHEUS_CONTENT)
    return exchange(server, frame(header_text(len(content), content_encoding='"base64"'), content), count=1)


def _undecodable_then_search(server: Running) -> Any:
    bad = Message.from_bytes(
        b'{"action": "search", "value": "\xff"}', content_type="text/json", encoding="utf-8"
    )
    answers, end = exchange(server, bad.encode() + REQUEST, count=2)
    server.wait_output("Traceback", 0.5)
    return answers, end, "Traceback" in server.output(), server.alive()


def _binary_not_utf8(server: Running) -> Any:
    return exchange(server, Message.from_bytes(b"\xff\xfe\x00\x01abcdefgh").encode(), count=1)


def _search_dog(server: Running) -> Any:
    return exchange(server, search("\U0001f436"), count=1)


def _not_json_then_search(server: Running) -> Any:
    bad = Message.from_bytes(b"not json", content_type="text/json", encoding="utf-8")
    return exchange(server, bad.encode() + REQUEST, count=2)


def _zero_length_then_alive(server: Running) -> Any:
    answers, _ = exchange(server, b"\x00\x00", count=1)
    return answers, server.exited(1.0)


def _search_without_value(server: Running) -> Any:
    request = Message.from_json({"action": "search"}).encode()
    answers, _ = exchange(server, request, count=1)
    status = server.exited(1.0)
    return answers, status, "KeyError" in server.output()


def _request_then_fin_in_one_segment(server: Running) -> Any:
    if not hasattr(socket, "TCP_CORK"):  # pragma: no cover - Linux has it
        pytest.skip("needs TCP_CORK to send a request and its FIN in one segment")
    with connect(server) as sock:
        # With TCP_CORK the request and the FIN leave in one segment: the server sees both at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        sock.sendall(REQUEST)
        sock.shutdown(socket.SHUT_WR)
        return read(sock, bound=1.5)


def _list_header_answer(server: Running) -> Any:
    return exchange(server, frame("[1, 2]"), count=1)


_ANSWER = ("result", MORPHEUS["result"])
_TOO_LARGE = ([("error", "content-too-large")], "close")

DEMOS: dict[str, Demo] = {
    "one_recv_selectors": Demo(_split_in_header, ([], "open"), ([_ANSWER], "open")),
    "recv_exact_threads": Demo(
        _split_in_prefix, ([("error", "zero-header-length")], "close"), ([_ANSWER], "open")
    ),
    "split_content_streams": Demo(
        _split_in_content, ([("error", "content-not-json")], "open"), ([_ANSWER], "open")
    ),
    "split_header_protocol": Demo(
        _split_in_header, ([("error", "header-not-json")], "close"), ([_ANSWER], "open")
    ),
    "pipeline_drop_selectors": Demo(
        _pipelined_two,
        ([_ANSWER], "open"),
        ([_ANSWER, ("result", "In the caves beneath the Misty Mountains. \U0001f48d")], "open"),
    ),
    "one_per_connection_socketserver": Demo(
        _pipelined_two,
        ([_ANSWER], "close"),
        ([_ANSWER, ("result", "In the caves beneath the Misty Mountains. \U0001f48d")], "open"),
    ),
    "guide_app_server": Demo(_huge_length, ([], "open"), _TOO_LARGE),
    "no_length_limit_threads": Demo(_huge_length, ([], "open"), _TOO_LARGE),
    "no_idle_timeout_streams": Demo(
        _quiet_mid_request, ([], "open"), ([("error", "idle-timeout")], "close"), idle_timeout=0.5
    ),
    "unbounded_buffer_protocol": Demo(_memory_under_never_reads, True, False),
    "memory_leak_socketserver": Demo(_memory_after_big_requests, True, False),
    "duplicate_keys_threads": Demo(
        _duplicate_length, ([_ANSWER], "open"), ([("error", "duplicate-key")], "close")
    ),
    "nan_socketserver": Demo(
        _nan_extension, ([_ANSWER], "open"), ([("error", "non-finite-number")], "close")
    ),
    "header_crash_threads": Demo(
        _list_header, ([], "close", True), ([("error", "header-not-object")], "close", False)
    ),
    "float_length_streams": Demo(
        _float_length, ([_ANSWER], "open"), ([("error", "invalid-header-value")], "close")
    ),
    "byteorder_unchecked_protocol": Demo(
        _byteorder_middle, ([_ANSWER], "open"), ([("error", "invalid-header-value")], "close")
    ),
    "peer_codec_streams": Demo(
        _base64_content, ([_ANSWER], "open"), ([("error", "unsupported-encoding")], "open")
    ),
    "traceback_survives_threads": Demo(
        _undecodable_then_search,
        ([("error", "internal-error"), _ANSWER], "open", True, True),
        ([("error", "content-not-decodable"), _ANSWER], "open", False, True),
    ),
    "binary_mangled_threads": Demo(
        _binary_not_utf8,
        ([("binary", b"First 10 bytes of request: \xef\xbf\xbd\xef\xbf\xbd\x00\x01ab")], "open"),
        ([("binary", b"First 10 bytes of request: \xff\xfe\x00\x01abcdef")], "open"),
    ),
    "latin1_request_socketserver": Demo(
        _search_dog,
        ([("result", "No match for '\xf0\x9f\x90\xb6'.")], "open"),
        ([("result", "\U0001f43e Playing ball! \U0001f3d0")], "open"),
    ),
    "bad_content_closes_selectors": Demo(
        _not_json_then_search, ([], "close"), ([("error", "content-not-json"), _ANSWER], "open")
    ),
    "exit_on_bad_header_selectors": Demo(
        _zero_length_then_alive, ([], 1), ([("error", "zero-header-length")], None)
    ),
    "crash_on_missing_value_selectors": Demo(
        _search_without_value, ([], 1, True), ([("result", "No match for 'None'.")], None, False)
    ),
    "half_close_selectors": Demo(_request_then_fin_in_one_segment, ([], "close"), ([_ANSWER], "close")),
    "error_shape_protocol": Demo(
        _list_header_answer,
        ([("result", "Error: JSON header is a list.")], "close"),
        ([("error", "header-not-object")], "close"),
    ),
}


def test_every_buggy_server_has_a_demo() -> None:
    assert set(DEMOS) == {server.name for server in BUGGY}


@pytest.mark.parametrize("name", sorted(DEMOS))
def test_zoo_bug_is_real_and_its_twin_is_right(run: Callable[..., Running], name: str) -> None:
    demo = DEMOS[name]
    buggy = run(name, demo.idle_timeout)
    observed = demo.run(buggy)
    assert observed == demo.bug, f"{name}: {observed!r}\n{buggy.output()[-2000:]}"
    correct = run(twin(ZOO[name]).name, demo.idle_timeout)
    observed = demo.run(correct)
    assert observed == demo.right, f"{correct.server.name} on {name}'s exchange: {observed!r}"


# -- (c) the correct servers conform ----------------------------------------------------


def expected(stream: bytes, eof: bool = True) -> tuple[list[Summary], str]:
    """What the reference server answers to ``stream`` (and whether it closes)."""
    conn = ServerConnection()
    out = conn.receive_data(stream)
    if eof and not conn.closed:
        out += conn.receive_eof()
    answers = [summarize(m) for m in Decoder(max_content_length=1 << 30).feed(out)]
    return answers, "close" if conn.closed else "open"


_MIXED = [
    REQUEST,
    search("\U0001f436"),
    Message.from_json({"action": "fetch", "value": "x"}, encoding="utf-16").encode(),
    Message.from_bytes(b"binary\xf0\x9f\x98\x83").encode(),
    Message.from_bytes(b"[1,]", content_type="text/json", encoding="utf-8").encode(),
    Message.from_bytes(b"{}", content_type="text/json", encoding="utf8").encode(),
    Message.from_json([1, {"action": "search"}], extra_headers={"x-trace": [1, {"a": None}]}).encode(),
    search("needle"),
]


@pytest.mark.parametrize("name", [server.name for server in CORRECT])
def test_zoo_correct_server_conforms(run: Callable[..., Running], name: str) -> None:
    server = run(name, idle_timeout=1.0)
    stream = b"".join(_MIXED)
    want, _ = expected(stream)

    # split inside the prefix, the header and the content, and pipelined in one send
    for cut in (1, 20, len(REQUEST) - 5):
        assert exchange(server, REQUEST[:cut], REQUEST[cut:], pause=0.05, count=1) == ([_ANSWER], "open")
    assert exchange(server, stream, count=len(want)) == (want, "open")
    # one byte at a time, then the client's FIN: every answer, then the close
    with connect(server) as sock:
        for i in range(len(REQUEST)):
            sock.sendall(REQUEST[i : i + 1])
        sock.shutdown(socket.SHUT_WR)
        assert read(sock) == ([_ANSWER], "close")

    # half-close inside a message: the complete requests, then incomplete-message
    half = REQUEST + search("ring")[:30]
    assert exchange(server, half, half_close=True) == expected(half)
    assert expected(half)[0][-1] == ("error", "incomplete-message")

    # a violation after two requests: both answered, the error message, the close
    for violation in (b"\x00\x00", frame('{"a": 1, "a": 2}'), frame(header_text(1 << 21))):
        answers, end = exchange(server, REQUEST + search("ring") + violation + REQUEST)
        assert (answers, end) == expected(REQUEST + search("ring") + violation)
        assert end == "close" and answers[-1][0] == "error"

    # a peer that goes quiet mid-request is cut off with idle-timeout
    assert exchange(server, REQUEST[:30], bound=2.5) == ([("error", "idle-timeout")], "close")
    assert server.alive()
