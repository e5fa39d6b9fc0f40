"""Issue 3's "done when", checked by a peer written without harness (tests/guide_peer.py).

The reference server runs as ``python -m harness serve`` in a subprocess; the
peer builds its requests and reads the answers with its own code and compares
them with docs/PROTOCOL.md's table (docs/PROTOCOL.md#a1).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from guide_peer import Peer, expected_result, request

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
CASES = [
    ("search", "morpheus"),
    ("search", "ring"),
    ("search", "🐶"),
    ("search", "needle"),
    ("search", ""),
    ("binary", "😃"),
    ("fetch", "x"),  # a non-search action goes as binary, like the guide's client sends it
    ("upload", "0123456789abcdef"),
]


@pytest.fixture(scope="module")
def address() -> Iterator[tuple[str, int]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "serve",
            "--port",
            "0",
            "--idle-timeout",
            "10",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        env=ENV,
    )
    assert proc.stdout is not None
    match = re.fullmatch(rb"Listening on (\S+):(\d+)\n", proc.stdout.readline())
    assert match
    yield match.group(1).decode(), int(match.group(2))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0  # SIGTERM exits 0


@pytest.mark.parametrize(("action", "value"), CASES)
def test_guide_peer_gets_the_protocol_md_answer(address: tuple[str, int], action: str, value: str) -> None:
    with Peer(address) as peer:
        peer.send(request(action, value))
        response = peer.read()
        assert response is not None
        assert response.body() == expected_result(action, value)
        assert response.header["content-length"] == len(response.content)


def test_guide_peer_fifty_pipelined_requests_answered_in_order(address: tuple[str, int]) -> None:
    cases = [CASES[i % len(CASES)] for i in range(50)]
    with Peer(address) as peer:
        peer.send(b"".join(request(a, v) for a, v in cases))
        bodies = [peer.read() for _ in cases]
    assert [b.body() if b else None for b in bodies] == [expected_result(a, v) for a, v in cases]


def test_guide_peer_requests_split_at_random_offsets(address: tuple[str, int]) -> None:
    rng = random.Random(3)  # fixed seed: deterministic
    cases = [CASES[rng.randrange(len(CASES))] for _ in range(20)]
    payload = b"".join(request(a, v) for a, v in cases)
    cuts = sorted(rng.sample(range(1, len(payload)), 40))
    with Peer(address) as peer:
        for start, end in zip([0, *cuts], [*cuts, len(payload)], strict=True):
            peer.send(payload[start:end])
        bodies = [peer.read() for _ in cases]
    assert [b.body() if b else None for b in bodies] == [expected_result(a, v) for a, v in cases]


def test_guide_peer_half_close_gets_every_answer(address: tuple[str, int]) -> None:
    with Peer(address) as peer:
        peer.send(b"".join(request(a, v) for a, v in CASES))
        peer.shutdown_write()
        responses = peer.read_until_closed()
    assert [r.body() for r in responses] == [expected_result(a, v) for a, v in CASES]


def _frame(header: bytes, content: bytes = b"") -> bytes:
    return struct.pack(">H", len(header)) + header + content


GOOD = (
    b'{"byteorder": "little", "content-type": "binary/x", "content-encoding": "binary", "content-length": 3}'
)
MALFORMED = {
    "zero header length": b"\x00\x00",
    "header not utf-8": _frame(GOOD.replace(b"binary/x", b"binary/\xff")),
    "header not json": _frame(b'{"byteorder": "little",'),
    "header is an array": _frame(b"[1, 2, 3]"),
    "duplicate key": _frame(GOOD[:-1] + b', "content-length": 3}', b"abc"),
    "NaN": _frame(GOOD.replace(b"3}", b"NaN}")),
    "missing key": _frame(b'{"byteorder": "little", "content-length": 0}'),
    "negative length": _frame(GOOD.replace(b"3}", b"-3}")),
    "float length": _frame(GOOD.replace(b"3}", b"3.0}"), b"abc"),
    "huge declared length": _frame(GOOD.replace(b"3}", b"1099511627776}"), b"abc"),
    "eof mid-content": _frame(GOOD, b"a"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_guide_peer_malformed_input_answered_within_3s_bystander_and_fresh_unharmed(
    address: tuple[str, int], name: str
) -> None:
    good = request("search", "ring")
    with Peer(address) as bystander, Peer(address) as offender:
        bystander.send(good[:30])
        started = time.monotonic()
        offender.send(MALFORMED[name])
        offender.shutdown_write()  # lets "eof mid-content" be an EOF; the others fail earlier
        try:
            responses = offender.read_until_closed()
        except ConnectionResetError:
            responses = []
        elapsed = time.monotonic() - started
        assert elapsed < 3.0
        # An error message or a close: this server sends the error message, then closes.
        assert len(responses) == 1 and "error" in responses[0].body(), responses
        bystander.send(good[30:])
        answer = bystander.read()
        assert answer is not None and answer.body() == expected_result("search", "ring")
    with Peer(address) as fresh:
        fresh.send(request("search", "morpheus"))
        answer = fresh.read()
        assert answer is not None and answer.body() == expected_result("search", "morpheus")


def test_guide_peer_one_request_per_connection_like_the_guide(address: tuple[str, int]) -> None:
    # The guide's client: connect, send one request, read one response, close; many times.
    for action, value in CASES * 3:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(request(action, value))
            response = Peer(sock).read()
            assert response is not None and response.body() == expected_result(action, value)
