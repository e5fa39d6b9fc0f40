"""The dissector on streams this project's writer did not shape.

1. A live capture on loopback (``tshark -i lo``, as root) of plain-socket clients
   and a guide-style server, whatever segmentation the kernel chose, compared
   with tshark's own reassembly of each stream (``-z follow,tcp,raw``): the
   dissector must show exactly the messages the codec decodes from those bytes.
2. Tricky segmentations and message shapes, written with the capture writer but
   checked against tshark's raw reassembly too (so the writer is checked as well):
   a message cut at every byte position, one byte per segment, headers in unusual
   JSON styles, UTF-16/UTF-32/Latin-1 content, empty contents, a partial message
   at the end of a segment, out-of-order plus retransmitted segments.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from dissector_helpers import (
    assert_clean,
    check_sessions,
    codec_view,
    compare_direction,
    records_by_direction,
    require_tshark,
    skip_unless_tshark_required,
)

from harness.capture.tshark import TsharkRun, dissect, follow_raw, tshark_env
from harness.capture.writer import CLIENT, Close, Send, Session, write_sessions
from harness.frames import frame
from harness.message import Message

TIMEOUT = 10.0


# -- a guide-style server and clients, on plain sockets --------------------------------


def _message(header: dict[str, object], content: bytes) -> bytes:
    raw = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(raw)) + raw + content


def _search(value: str) -> bytes:
    content = json.dumps({"action": "search", "value": value}, ensure_ascii=False).encode("utf-8")
    return _message(
        {
            "byteorder": sys.byteorder,
            "content-type": "text/json",
            "content-encoding": "utf-8",
            "content-length": len(content),
        },
        content,
    )


class _Reader:
    """Whole messages from a socket the guide's way: length prefix, header, content."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.buf = b""

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.conn.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def message(self) -> bytes | None:
        """The next message's bytes, or None at EOF."""
        if not self._need(2):
            return None
        hlen = struct.unpack(">H", self.buf[:2])[0]
        if not self._need(2 + hlen):
            return None
        total = 2 + hlen + json.loads(self.buf[2 : 2 + hlen])["content-length"]
        if not self._need(total):
            return None
        raw, self.buf = self.buf[:total], self.buf[total:]
        return raw


def _guide_server(listener: socket.socket, connections: int, errors: list[BaseException]) -> None:
    """Answer each request on each connection, the way the guide's app-server does, then close."""
    try:
        for _ in range(connections):
            conn, _ = listener.accept()
            with conn:
                conn.settimeout(TIMEOUT)
                reader = _Reader(conn)
                while (raw := reader.message()) is not None:
                    hlen = struct.unpack(">H", raw[:2])[0]
                    header = json.loads(raw[2 : 2 + hlen])
                    content = raw[2 + hlen :]
                    if header["content-type"] == "text/json":
                        query = json.loads(content)["value"]
                        answer = json.dumps(
                            {"result": f"No match for '{query}'."}, ensure_ascii=False
                        ).encode()
                        reply = _message(
                            {
                                "byteorder": sys.byteorder,
                                "content-type": "text/json",
                                "content-encoding": "utf-8",
                                "content-length": len(answer),
                            },
                            answer,
                        )
                    else:
                        body = b"First 10 bytes of request: " + content[:10]
                        reply = _message(
                            {
                                "byteorder": sys.byteorder,
                                "content-type": "binary/custom-server-binary-type",
                                "content-encoding": "binary",
                                "content-length": len(body),
                            },
                            body,
                        )
                    conn.sendall(reply)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def _client(port: int, sends: list[bytes], replies: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for data in sends:
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert received.count(b'"byteorder"') == replies


class _Capture:
    """``tshark -i lo -w FILE -P``: the summary line of each packet on stdout says it is in the file."""

    def __init__(self, exe: str, port: int, path: Path, home: Path) -> None:
        self.proc = subprocess.Popen(
            [exe, "-n", "-l", "-P", "-i", "lo", "-f", f"tcp port {port}", "-w", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=tshark_env(str(home)),
        )
        self.out = {"stdout": b"", "stderr": b""}

    def wait_for(self, stream: str, predicate: Callable[[bytes], bool], timeout: float) -> None:
        """Read tshark's output until ``predicate`` holds for ``stream``'s text so far."""
        assert self.proc.stdout is not None and self.proc.stderr is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ, "stdout")
            selector.register(self.proc.stderr, selectors.EVENT_READ, "stderr")
            while not predicate(self.out[stream]):
                ready = selector.select(timeout)
                if not ready:
                    raise TimeoutError(f"tshark output after {timeout} s: {self.out}")
                for key, _ in ready:
                    chunk = os.read(key.fileobj.fileno(), 65536)  # type: ignore[union-attr]
                    if not chunk:
                        raise RuntimeError(f"tshark exited: {self.out}")
                    self.out[key.data] += chunk

    def stop(self) -> None:
        # tshark stops the capture cleanly on SIGTERM (it ignores SIGINT when not on a terminal)
        self.proc.terminate()
        try:
            self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=TIMEOUT)
            raise


def test_dissector_on_a_live_loopback_capture_equals_tsharks_own_reassembly(tmp_path: Path) -> None:
    exe = require_tshark()
    if os.geteuid() != 0:
        pytest.skip("capturing on loopback needs root (tshark -i lo)")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    binary = _message(
        {
            "byteorder": sys.byteorder,
            "content-type": "binary/custom-client-binary-type",
            "content-encoding": "binary",
            "content-length": 10,
        },
        "binary😃".encode(),
    )
    big = _message(
        {
            "byteorder": sys.byteorder,
            "content-type": "binary/x",
            "content-encoding": "binary",
            "content-length": 70000,
        },
        bytes(range(256)) * 273 + bytes(112),
    )
    clients = [
        ([_search("needle")], 1),  # the guide's client: one request
        ([binary[:1], binary[1:9], binary[9:]], 1),  # split in the prefix and the header
        ([_search("a") + _search("b") + binary[:50], binary[50:]], 3),  # pipelined, one message straddling
        ([big], 1),  # far more than one segment
    ]
    capture = tmp_path / "live.pcapng"
    home = tmp_path / "home"
    home.mkdir()
    tshark = _Capture(exe, port, capture, home)
    try:
        try:
            tshark.wait_for("stderr", lambda text: b"Capture started" in text, TIMEOUT)
        except (TimeoutError, RuntimeError) as exc:
            skip_unless_tshark_required(f"cannot capture on loopback here: {exc}")
        errors: list[BaseException] = []
        server = threading.Thread(target=_guide_server, args=(listener, len(clients), errors), daemon=True)
        server.start()
        for sends, replies in clients:
            _client(port, sends, replies)
        server.join(TIMEOUT)
        assert not server.is_alive() and not errors, errors
        # both FINs of every connection are in the file once tshark has printed them
        tshark.wait_for("stdout", lambda text: text.count(b"FIN") >= 2 * len(clients), TIMEOUT)
    finally:
        tshark.stop()
        listener.close()

    raw = follow_raw(capture, range(len(clients)))
    # With the port preference every stream; with the heuristic alone every stream but
    # stream 1, which starts with a 1-byte segment that no heuristic can recognise.
    problems = _compare_live(dissect(capture, prefs={"lpjson.port": str(port)}), raw, clients, port, range(4))
    problems += _compare_live(dissect(capture, prefs={}), raw, clients, port, (0, 2, 3))
    assert not problems, "\n".join(problems)


def _compare_live(
    run: TsharkRun,
    raw: dict[int, tuple[bytes, bytes]],
    clients: list[tuple[list[bytes], int]],
    port: int,
    streams: Iterable[int],
) -> list[str]:
    assert_clean(run)
    grouped = records_by_direction(run)
    problems = []
    for stream in streams:
        sends = clients[stream][0]
        client_bytes, server_bytes = raw[stream]
        assert client_bytes == b"".join(sends), f"stream {stream}: the capture misses client bytes"
        for sender, data in ((f"127.0.0.1:{port}", server_bytes), (None, client_bytes)):
            records = [
                r
                for (s, who), rs in grouped.items()
                if s == stream and ((who == sender) if sender else not who.endswith(f":{port}"))
                for r in rs
            ]
            expected = codec_view(data, ended=True)
            assert expected.messages, f"stream {stream}: no messages in {data[:80]!r}"
            problems += compare_direction(f"live stream {stream} ({sender or 'client'})", expected, records)
    return problems


# -- tricky segmentations -------------------------------------------------------------


def _tricky_sessions() -> list[Session]:
    morpheus = Message.from_json({"action": "search", "value": "morpheus"}, byteorder="little").encode()
    sessions = [
        Session.exchange([morpheus[:cut], morpheus[cut:]], comment=f"cut at byte {cut}")
        for cut in range(1, len(morpheus))
    ]
    styled_header = (
        b'\n {"content-length":2,\t"content-encoding" : "UTF-8",'
        b'"byteorder":"big","content-type":"text\\/json"} '
    )
    styled = frame(styled_header, b"[]")
    utf16 = Message.from_bytes(
        '{"value": "🐶 ok"}'.encode("utf-16"), content_type="text/json", encoding="UTF-16"
    )
    utf32 = Message.from_bytes('["ring"]'.encode("utf-32-be"), content_type="text/json", encoding="utf-32")
    utf32_bom = Message.from_bytes(
        '["ring", 1]'.encode("utf-32"), content_type="text/json", encoding="utf-32"
    )
    utf16_be = Message.from_bytes(
        b"\xfe\xff" + '{"a": "ü"}'.encode("utf-16-be"), content_type="text/json", encoding="utf-16"
    )
    latin = Message.from_bytes('{"é": "ü"}'.encode("latin-1"), content_type="text/json", encoding="latin-1")
    empty_bin = Message.from_bytes(b"", content_type="binary/x", encoding="binary")
    empty_json = Message.from_bytes(b"", content_type="text/json", encoding="utf-8")
    ext = Message.from_json(
        [1.5, None, True, "\u2028"], extra_headers={"x-trace": {"id": [1, 2]}, "x-é": "🐶"}
    )
    escaped_header = (
        b'{"byteorder": "little", "content-type": "\\u0074ext/json", "content-encoding": "utf-8", '
        b'"content-length": 2, "x": "\\ud83d\\udc36", "y": 1E+2, "z": -0}'
    )
    escaped = frame(escaped_header, b"{}")
    stream = b"".join(
        [
            styled,
            utf16.encode(),
            utf32.encode(),
            utf32_bom.encode(),
            utf16_be.encode(),
            latin.encode(),
            empty_bin.encode(),
            empty_json.encode(),
            ext.encode(),
            escaped,
        ]
    )
    sessions += [
        Session.exchange(
            [*(stream[i : i + 1] for i in range(200)), stream[200:]],
            comment="unusual shapes, the first 200 bytes one per segment",
        ),
        Session.exchange([stream], mss=1, comment="unusual shapes, MSS 1"),
        Session.exchange(
            [stream + morpheus[:30], morpheus[30:]],
            mss=100,
            out_of_order=2,
            retransmit=4,
            comment="out of order and retransmitted, a partial message at a segment's end",
        ),
        Session([Send(CLIENT, morpheus * 3 + morpheus[:1]), Close(CLIENT)], comment="ends inside the prefix"),
        Session.exchange([morpheus + b"\x00\x03[1]"], comment="a header that is a list"),
    ]
    return sessions


def test_dissector_on_tricky_segmentations_equals_codec_and_raw_reassembly(tmp_path: Path) -> None:
    require_tshark()
    sessions = _tricky_sessions()
    capture = tmp_path / "tricky.pcapng"
    write_sessions(capture, sessions)
    raw = follow_raw(capture, range(len(sessions)))
    for index, session in enumerate(sessions):
        assert raw[index][0] == session.stream(CLIENT), (
            f"stream {index}: tshark reassembles other client bytes"
        )
    run = dissect(capture)
    assert_clean(run)
    problems = check_sessions(run, sessions)
    assert not problems, "\n".join(problems[:40])
    # every cut position showed the message exactly once, in the segment that completes it
    cut_records = [r for r in run.records if r.stream < len(sessions) - 5 and r.kind == "message"]
    assert len(cut_records) == len(sessions) - 5
