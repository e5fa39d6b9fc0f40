"""An lpjson peer written from docs/PROTOCOL.md alone, independently of harness.

It imports nothing from harness: it builds requests the way the guide's
``app-client.py`` does (``json.dumps(..., ensure_ascii=False)``, a 2-byte
big-endian length) and parses responses with its own few lines of code, so a
bug shared by harness's codec and its server cannot hide from it. The expected
answers are docs/PROTOCOL.md's table (#a1), written out here.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

#: docs/PROTOCOL.md#a1's search table.
ANSWERS = {
    "morpheus": "Follow the white rabbit. 🐰",
    "ring": "In the caves beneath the Misty Mountains. 💍",
    "🐶": "🐾 Playing ball! 🏐",
}


def encode(header_extra: dict[str, Any], content: bytes) -> bytes:
    """One message the guide's way: required keys in the guide's order, then the content."""
    header = {
        "byteorder": sys.byteorder,
        "content-type": header_extra["content-type"],
        "content-encoding": header_extra["content-encoding"],
        "content-length": len(content),
    }
    raw = json.dumps(header, ensure_ascii=False).encode("utf-8")
    return struct.pack(">H", len(raw)) + raw + content


def request(action: str, value: str) -> bytes:
    """The guide client's request: text/json for ``search``, binary ``action + value`` otherwise."""
    if action == "search":
        content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode("utf-8")
        return encode({"content-type": "text/json", "content-encoding": "utf-8"}, content)
    return encode(
        {"content-type": "binary/custom-client-binary-type", "content-encoding": "binary"},
        (action + value).encode("utf-8"),
    )


def expected_result(action: str, value: str) -> dict[str, Any] | bytes:
    """What docs/PROTOCOL.md says the answer is: the JSON object, or the binary content."""
    if action == "search":
        return {"result": ANSWERS.get(value, f"No match for '{value}'.")}
    return b"First 10 bytes of request: " + (action + value).encode("utf-8")[:10]


@dataclass
class Response:
    header: dict[str, Any]
    content: bytes

    def body(self) -> dict[str, Any] | bytes:
        if self.header["content-type"] == "text/json":
            value = json.loads(self.content.decode(self.header["content-encoding"]))
            assert isinstance(value, dict)
            return value
        return self.content


class Peer:
    """A blocking connection that reads whole messages from a plain ``bytes`` buffer."""

    def __init__(self, address: tuple[str, int] | socket.socket, timeout: float = 5.0) -> None:
        if isinstance(address, socket.socket):
            self.sock = address
        else:
            self.sock = socket.create_connection(address, timeout=timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buffer = b""
        self.eof = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete response in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            self.eof = True
        self.buffer += chunk

    def read(self) -> Response | None:
        """The next response, or None if the server closed at a message boundary."""
        deadline = time.monotonic() + self.timeout
        while len(self.buffer) < 2 and not self.eof:
            self._fill(deadline)
        if len(self.buffer) < 2:
            assert not self.buffer, f"the server closed inside a proto-header: {self.buffer!r}"
            return None
        (header_length,) = struct.unpack(">H", self.buffer[:2])
        while len(self.buffer) < 2 + header_length and not self.eof:
            self._fill(deadline)
        header = json.loads(self.buffer[2 : 2 + header_length].decode("utf-8"))
        end = 2 + header_length + header["content-length"]
        while len(self.buffer) < end and not self.eof:
            self._fill(deadline)
        assert len(self.buffer) >= end, "the server closed inside a message"
        content, self.buffer = self.buffer[2 + header_length : end], self.buffer[end:]
        return Response(header, content)

    def read_until_closed(self) -> list[Response]:
        responses = []
        while (response := self.read()) is not None:
            responses.append(response)
        return responses

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
