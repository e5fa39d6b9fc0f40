# Bug: no timeout: waits forever when the server never answers (caught by silent).
# A copy of correct_blocking.py with that one bug.
# Usage: python correct_blocking.py HOST PORT ACTION VALUE

import json
import socket
import struct
import sys

TIMEOUT = 2.0
MAX_CONTENT = 1 << 20
TEXT_ENCODINGS = {"utf-8", "utf-16", "utf-32", "ascii", "latin-1"}


class BadResponse(Exception):
    pass


def no_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise BadResponse("duplicate key in JSON")
    return dict(pairs)


def no_constants(name):
    raise BadResponse(f"non-finite number {name} in JSON")


def strict_json(text):
    try:
        return json.loads(text, object_pairs_hook=no_duplicates, parse_constant=no_constants)
    except json.JSONDecodeError as exc:
        raise BadResponse(f"not JSON: {exc}") from None


def recv_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 65536))
        if not chunk:
            raise BadResponse(f"server closed after {len(buf)} of {n} bytes")
        buf += chunk
    return bytes(buf)


def encode(action, value):
    if action == "search":
        content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode()
        ctype, cenc = "text/json", "utf-8"
    else:
        content = (action + value).encode()
        ctype, cenc = "binary/custom-client-binary-type", "binary"
    header = {
        "byteorder": sys.byteorder,
        "content-type": ctype,
        "content-encoding": cenc,
        "content-length": len(content),
    }
    raw = json.dumps(header, ensure_ascii=False).encode()
    return struct.pack(">H", len(raw)) + raw + content


def read_response(sock):
    (hdrlen,) = struct.unpack(">H", recv_exact(sock, 2))
    if hdrlen == 0:
        raise BadResponse("empty JSON header")
    try:
        header = strict_json(recv_exact(sock, hdrlen).decode("utf-8"))
    except UnicodeDecodeError:
        raise BadResponse("JSON header is not UTF-8") from None
    if not isinstance(header, dict):
        raise BadResponse("JSON header is not an object")
    for key in ("byteorder", "content-type", "content-encoding", "content-length"):
        if key not in header:
            raise BadResponse(f"missing header {key}")
    length = header["content-length"]
    if type(length) is not int or length < 0:
        raise BadResponse(f"bad content-length {length!r}")
    if length > MAX_CONTENT:
        raise BadResponse(f"content-length {length} over the limit")
    if header["byteorder"] not in ("little", "big"):
        raise BadResponse("bad byteorder")
    content = recv_exact(sock, length)
    if header["content-type"] != "text/json":
        return header, content
    encoding = header["content-encoding"]
    if not isinstance(encoding, str) or encoding.lower() not in TEXT_ENCODINGS:
        raise BadResponse(f"content-encoding {encoding!r} not allowed")
    try:
        text = content.decode(encoding)
    except UnicodeDecodeError:
        raise BadResponse("content does not decode") from None
    return header, strict_json(text)


def main():
    if len(sys.argv) != 5:
        print(f"usage: {sys.argv[0]} HOST PORT ACTION VALUE", file=sys.stderr)
        return 2
    host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        with socket.create_connection((host, port)) as sock:
            sock.sendall(encode(action, value))
            _, body = read_response(sock)
    except BadResponse as exc:
        print(f"error: bad response: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if isinstance(body, dict):
        print(f"Got result: {body.get('result')}")
    else:
        print(f"Got response: {body!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
