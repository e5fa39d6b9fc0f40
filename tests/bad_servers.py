"""Deliberately wrong lpjson servers, for testing that the probe catches them.

Each server listens on 127.0.0.1, port 0, with one thread per connection and
plain blocking sockets; ``stop()`` shuts every socket down (waking blocked
calls) and joins the threads with a bound.

- :class:`OneRequestServer`: written from scratch, sharing nothing with
  harness (no codec, no application): answers one request per connection and
  closes, like the guide's ``app-server.py``. Otherwise careful: strict JSON,
  every header value checked, the encoding allow-list, error messages for bad
  content.
- :class:`SplitHeaderServer`: pipelined, but assumes the JSON header arrives in
  the same read as its 2-byte prefix; a header split across reads is misread.
- :class:`DiesOnBadJSONServer`: correct framing, but a header or content that
  ``json.loads`` rejects brings the whole server down (listener and every
  connection closed, as when a process dies).
- :class:`SilentServer`: accepts, reads and discards everything, never answers
  and never closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import struct
import sys
import threading
from types import TracebackType

from harness.apps import search_app
from harness.errors import ContentError
from harness.message import Message

log = logging.getLogger(__name__)

_LIMIT = 1 << 20


class _ThreadedServer:
    """Accept loop plus one thread per connection; subclasses implement ``handle``."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self.dead = threading.Event()

    def start(self) -> tuple[str, int]:
        thread = threading.Thread(target=self._accept_loop, name=f"{type(self).__name__}-accept", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.address

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if self._stopping.is_set():
                    conn.close()
                    return
                self._conns.add(conn)
                thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError as exc:
            log.debug("%s: connection failed: %s", type(self).__name__, exc)
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def die(self) -> None:
        """Stop everything at once, the way a crashing process would."""
        self.dead.set()
        self._shutdown()

    def _shutdown(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._shutdown()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(5.0)

    def __enter__(self) -> tuple[str, int]:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- written from scratch ---------------------------------------------------------------


_ANSWERS = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}


def _strict_loads(raw: bytes | str) -> object:
    """``json.loads``, but NaN, Infinity and repeated keys are errors (docs/PROTOCOL.md H3, H4):
    a careful server's JSON, so that the planted bug is each server's only deviation."""

    def no_constant(name: str) -> object:
        raise ValueError(f"non-finite number {name}")

    def no_repeats(pairs: list[tuple[str, object]]) -> dict[str, object]:
        obj = dict(pairs)
        if len(obj) != len(pairs):
            raise ValueError("repeated key")
        return obj

    return json.loads(raw, parse_constant=no_constant, object_pairs_hook=no_repeats)


def _encode(obj_or_bytes: object, content_type: str, encoding: str) -> bytes:
    if isinstance(obj_or_bytes, bytes):
        content = obj_or_bytes
    else:
        content = json.dumps(obj_or_bytes, ensure_ascii=False).encode(encoding)
    header = json.dumps(
        {
            "byteorder": sys.byteorder,
            "content-type": content_type,
            "content-encoding": encoding,
            "content-length": len(content),
        },
        ensure_ascii=False,
    ).encode("utf-8")
    return struct.pack(">H", len(header)) + header + content


_TEXT_ENCODINGS = ("utf-8", "utf-16", "utf-32", "ascii", "latin-1")


def _error(code: str, detail: str) -> bytes:
    return _encode({"error": code, "detail": detail}, "text/json", "utf-8")


class OneRequestServer(_ThreadedServer):
    """The guide's pattern: read one request, answer it, close. Nothing from harness."""

    def _read_exactly(self, conn: socket.socket, buf: bytearray, n: int) -> bool:
        while len(buf) < n:
            data = conn.recv(65536)
            if not data:
                return False
            buf += data
        return True

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30.0)
        buf = bytearray()
        if not self._read_exactly(conn, buf, 2):
            return
        (header_length,) = struct.unpack(">H", buf[:2])
        if header_length == 0 or not self._read_exactly(conn, buf, 2 + header_length):
            return
        try:
            header = _strict_loads(bytes(buf[2 : 2 + header_length]).decode("utf-8"))
        except ValueError:
            return
        if not isinstance(header, dict):
            return
        length = header.get("content-length")
        if type(length) is not int or not 0 <= length <= _LIMIT:
            return
        if header.get("byteorder") not in ("little", "big"):
            return
        for key in ("content-type", "content-encoding"):
            if not isinstance(header.get(key), str) or not header[key]:
                return
        end = 2 + header_length + length
        if not self._read_exactly(conn, buf, end):
            return
        content = bytes(buf[2 + header_length : end])
        if header["content-type"] == "text/json":
            encoding = header["content-encoding"].lower()
            if encoding not in _TEXT_ENCODINGS:
                conn.sendall(_error("unsupported-encoding", f"content-encoding {encoding!r} is not allowed"))
                return
            try:
                text = content.decode(encoding)
            except UnicodeDecodeError as exc:
                conn.sendall(_error("content-not-decodable", str(exc)))
                return
            try:
                request = _strict_loads(text)
            except ValueError as exc:
                conn.sendall(_error("content-not-json", str(exc)))
                return
            if not isinstance(request, dict):
                request = {}
            action, value = request.get("action"), request.get("value")
            if action == "search":
                answer = _ANSWERS.get(value, f"No match for '{value}'.")
            else:
                answer = f"Error: invalid action '{action}'."
            conn.sendall(_encode({"result": answer}, "text/json", "utf-8"))
        else:
            reply = b"First 10 bytes of request: " + content[:10]
            conn.sendall(_encode(reply, "binary/custom-server-binary-type", "binary"))
        # One request per connection: whatever else the client sent is ignored.


# -- built on harness, with one planted bug each -----------------------------------------


class _FramingServer(_ThreadedServer):
    """Pipelined request loop; ``read_header`` and ``parse_json`` are the hooks for the bugs."""

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(30.0)
        buf = bytearray()
        while True:
            while len(buf) < 2:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            header_length = int.from_bytes(buf[:2], "big")
            raw_header = self.read_header(conn, buf, header_length)
            if raw_header is None or header_length == 0:
                return
            header = self.parse_json(raw_header)
            if not isinstance(header, dict):
                return
            length = header.get("content-length")
            if type(length) is not int or not 0 <= length <= _LIMIT:
                return
            end = 2 + header_length + length
            while len(buf) < end:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            content = bytes(buf[2 + header_length : end])
            del buf[:end]
            try:
                request = Message(header, content)
            except ValueError:  # an invalid header value: close
                return
            if request.is_json:
                self.parse_json(content)  # the dying server dies here on bad content
            try:
                answer = search_app(request)
            except ContentError as error:  # answered with its error message; the stream is in sync
                answer = Message.from_json({"error": error.code, "detail": str(error)})
            conn.sendall(answer.encode())

    def read_header(self, conn: socket.socket, buf: bytearray, header_length: int) -> bytes | None:
        while len(buf) < 2 + header_length:
            data = conn.recv(65536)
            if not data:
                return None
            buf += data
        return bytes(buf[2 : 2 + header_length])

    def parse_json(self, raw: bytes) -> object:
        try:
            return _strict_loads(raw)
        except ValueError:
            return None


class SplitHeaderServer(_FramingServer):
    """Bug: takes the JSON header from whatever arrived with the prefix, without waiting for the rest."""

    def read_header(self, conn: socket.socket, buf: bytearray, header_length: int) -> bytes | None:
        return bytes(buf[2 : 2 + header_length])  # may be short: misread as a bad header


class DiesOnBadJSONServer(_FramingServer):
    """Bug: a header or content that ``json.loads`` rejects takes the whole server down."""

    def parse_json(self, raw: bytes) -> object:
        try:
            return json.loads(raw)
        except ValueError:
            log.debug("bad JSON: the server dies")
            self.die()
            raise OSError("server died on bad JSON") from None


class SilentServer(_ThreadedServer):
    """Reads and discards everything; never answers, never closes first."""

    def handle(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        while conn.recv(65536):
            pass
        self._stopping.wait(60.0)  # hold the connection open after the client's FIN


SERVERS: dict[str, type[_ThreadedServer]] = {
    "one-request": OneRequestServer,
    "split-header": SplitHeaderServer,
    "dies-on-bad-json": DiesOnBadJSONServer,
    "silent": SilentServer,
}


def main(argv: list[str] | None = None) -> int:
    """Run one bad server in the foreground, e.g. ``python tests/bad_servers.py one-request``."""
    import argparse

    parser = argparse.ArgumentParser(description="Run a deliberately wrong lpjson server on 127.0.0.1.")
    parser.add_argument("kind", choices=sorted(SERVERS))
    args = parser.parse_args(argv)
    server = SERVERS[args.kind]()
    host, port = server.start()
    print(f"Listening on {host}:{port}", flush=True)
    try:
        while not server.dead.wait(1.0):
            pass
        print("the server died", flush=True)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
