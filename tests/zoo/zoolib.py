"""The shared half of the zoo's servers: what the guide keeps in ``libserver.py``.

Standard library only, nothing from harness: this plays the part of a user's own
protocol module, written from docs/PROTOCOL.md. It holds what every careful
server needs whatever its I/O style: strict JSON reading, the header checks, the
search application, the message and error-message encoders and the limits. Each
server script keeps its own framing and I/O loop (that is where most bugs live),
and a buggy server replaces one of these pieces with its own code.

A server script runs as ``python NAME.py HOST PORT`` from any directory: Python
puts the script's directory on ``sys.path``, so ``import zoolib`` finds this file.
"""

import json
import math
import os
import re
import socket
import sys

# -- limits (docs/PROTOCOL.md#l1 .. #l3) ------------------------------------------

MAX_CONTENT_LENGTH = 1 << 20  # 1 MiB
#: Seconds a connection may go without completing a request; ZOO_IDLE_TIMEOUT overrides
#: (the tests shorten it).
IDLE_TIMEOUT = float(os.environ.get("ZOO_IDLE_TIMEOUT", "3"))
#: Stop reading a connection while this much of its output is unsent.
MAX_PENDING_OUTPUT = 256 * 1024
MAX_CONNECTIONS = 512
#: After an error message: how long to read and discard until the peer closes.
LINGER = 2.0
RECV_SIZE = 65536
MAX_DEPTH = 200

TEXT_ENCODINGS = {"utf-8", "utf-16", "utf-32", "ascii", "latin-1"}
REQUIRED_KEYS = ("byteorder", "content-type", "content-encoding", "content-length")

REQUEST_SEARCH = {
    "morpheus": "Follow the white rabbit. \U0001f430",
    "ring": "In the caves beneath the Misty Mountains. \U0001f48d",
    "\U0001f436": "\U0001f43e Playing ball! \U0001f3d0",
}

# Error codes: framing and header errors close the connection, content errors do not.
CONTENT_ERRORS = {"unsupported-encoding", "content-not-decodable", "content-not-json"}


class ProtocolViolation(Exception):
    """A peer broke a rule: ``code`` is the spec's error code, ``detail`` says why."""

    def __init__(self, code, detail):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def fatal(self):
        """Framing and header errors end the stream (docs/PROTOCOL.md#f5)."""
        return self.code not in CONTENT_ERRORS


# -- strict JSON (docs/PROTOCOL.md#h1 .. #h4) ------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


def _depth(text):
    depth = deepest = 0
    for char in _STRING.sub("", text):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


class _Lax:
    """Marks a json.loads hook argument the caller did not give."""


def loads_strict(text, codes, object_pairs_hook=_Lax, parse_constant=_Lax, parse_float=_Lax):
    """One strict JSON value from ``text``; violations raise ``ProtocolViolation``.

    ``codes`` maps the kinds "utf8", "json", "non-finite", "duplicate" onto error
    codes (the header has one code per kind, text/json content one for all). The
    checks run in the order of docs/PROTOCOL.md#check-order. A caller may pass its
    own json.loads hooks instead of the strict ones.
    """
    if text.startswith("\ufeff"):
        raise ProtocolViolation(codes["utf8"], "starts with a byte order mark")
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
        raise ProtocolViolation(codes["json"], f"nested more than {MAX_DEPTH} levels deep")
    non_finite = []
    duplicates = []

    def on_constant(name):
        non_finite.append(name)
        return math.nan

    def on_float(literal):
        value = float(literal)
        if math.isinf(value):
            non_finite.append(literal)
        return value

    def on_pairs(pairs):
        obj = dict(pairs)
        if len(obj) != len(pairs) and not duplicates:
            seen = set()
            for key, _ in pairs:
                if key in seen:
                    duplicates.append(key)
                    break
                seen.add(key)
        return obj

    try:
        value = json.loads(
            text,
            object_pairs_hook=on_pairs if object_pairs_hook is _Lax else object_pairs_hook,
            parse_constant=on_constant if parse_constant is _Lax else parse_constant,
            parse_float=on_float if parse_float is _Lax else parse_float,
        )
    except json.JSONDecodeError as exc:
        raise ProtocolViolation(codes["json"], f"{exc.msg} at character {exc.pos}") from None
    except ValueError as exc:  # an integer longer than Python's digit limit
        raise ProtocolViolation(codes["json"], f"number out of range: {exc}") from None
    if non_finite:
        raise ProtocolViolation(codes["non-finite"], f"non-finite number {non_finite[0]}")
    if duplicates:
        raise ProtocolViolation(codes["duplicate"], f"duplicate key {duplicates[0]!r}")
    if "\\u" in text:
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ProtocolViolation(codes["utf8"], "escapes a lone UTF-16 surrogate") from None
    return value


HEADER_CODES = {
    "utf8": "header-not-utf8",
    "json": "header-not-json",
    "non-finite": "non-finite-number",
    "duplicate": "duplicate-key",
}
CONTENT_CODES = dict.fromkeys(HEADER_CODES, "content-not-json")


# -- the header (docs/PROTOCOL.md#h5 .. #h7, #l1) --------------------------------


def decode_header_text(raw):
    try:
        return bytes(raw).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolViolation("header-not-utf8", f"invalid UTF-8 at byte {exc.start}") from None


def check_header(header):
    """The content-length of a parsed JSON header, after checking its shape and values."""
    if not isinstance(header, dict):
        raise ProtocolViolation("header-not-object", f"JSON header is a {type(header).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in header]
    if missing:
        raise ProtocolViolation("missing-header-key", "missing " + ", ".join(missing))
    byteorder = header["byteorder"]
    if type(byteorder) is not str or byteorder not in ("little", "big"):
        raise ProtocolViolation("invalid-header-value", f"byteorder {byteorder!r:.60}")
    for key in ("content-type", "content-encoding"):
        if type(header[key]) is not str or not header[key]:
            raise ProtocolViolation("invalid-header-value", f"{key} {header[key]!r:.60}")
    length = header["content-length"]
    if type(length) is not int or length < 0:
        raise ProtocolViolation("invalid-header-value", f"content-length {length!r:.60}")
    if length > MAX_CONTENT_LENGTH:
        raise ProtocolViolation("content-too-large", f"content-length {length} over {MAX_CONTENT_LENGTH}")
    return length


def parse_header(raw):
    """(header, content-length) of a whole raw JSON header, every header rule checked."""
    header = loads_strict(decode_header_text(raw), HEADER_CODES)
    return header, check_header(header)


# -- content (docs/PROTOCOL.md#c2 .. #c4) and the search application (#a1 .. #a3) --


def read_json_content(header, content):
    if header["content-type"] != "text/json":
        raise ProtocolViolation("content-not-json", "content-type is not text/json")
    encoding = header["content-encoding"]
    if encoding.lower() not in TEXT_ENCODINGS:
        raise ProtocolViolation("unsupported-encoding", f"content-encoding {encoding!r:.60}")
    try:
        text = bytes(content).decode(encoding)
    except UnicodeDecodeError as exc:
        detail = f"not valid {encoding} at byte {exc.start}"
        raise ProtocolViolation("content-not-decodable", detail) from None
    return loads_strict(text, CONTENT_CODES)


def search_result(request):
    """The guide's lookup: the ``result`` text for a decoded text/json request."""
    if isinstance(request, dict):
        action, query = request.get("action"), request.get("value")
    else:
        action = query = None
    if action == "search":
        answer = REQUEST_SEARCH.get(query) if type(query) is str else None
        return answer if answer is not None else f"No match for '{query}'."
    return f"Error: invalid action '{action}'."


def json_message(obj):
    return create_message(json.dumps(obj, ensure_ascii=False).encode("utf-8"), "text/json", "utf-8")


def binary_response(content):
    return create_message(
        b"First 10 bytes of request: " + bytes(content[:10]), "binary/custom-server-binary-type", "binary"
    )


def search_response(header, content):
    """The response message (bytes) to one request; bad content raises ``ProtocolViolation``."""
    if header["content-type"] == "text/json":
        return json_message({"result": search_result(read_json_content(header, content))})
    return binary_response(content)


def create_message(content_bytes, content_type, content_encoding):
    jsonheader = {
        "byteorder": sys.byteorder,
        "content-type": content_type,
        "content-encoding": content_encoding,
        "content-length": len(content_bytes),
    }
    jsonheader_bytes = json.dumps(jsonheader, ensure_ascii=False).encode("utf-8")
    return len(jsonheader_bytes).to_bytes(2, "big") + jsonheader_bytes + content_bytes


def error_message(code, detail):
    """docs/PROTOCOL.md#s6: text/json {"error": code, "detail": reason}."""
    return json_message({"error": code, "detail": detail})


def answer(header, content):
    """``search_response``, with bad content answered by its error message (docs/PROTOCOL.md#s3)."""
    try:
        return search_response(header, content)
    except ProtocolViolation as exc:
        return error_message(exc.code, exc.detail)


# -- the command line ------------------------------------------------------------


def parse_args():
    if len(sys.argv) != 3:
        print(f"Usage: {sys.argv[0]} <host> <port>", file=sys.stderr)
        sys.exit(2)
    return sys.argv[1], int(sys.argv[2])


def listening(sock):
    """The first line on stdout, with the real port when the given one was 0."""
    host, port = sock.getsockname()[:2]
    print(f"Listening on {host}:{port}", flush=True)


def make_listener(host, port, blocking=True):
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Avoid bind() exception: OSError: [Errno 48] Address already in use
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((host, port))
    lsock.listen(128)
    lsock.setblocking(blocking)
    listening(lsock)
    return lsock
