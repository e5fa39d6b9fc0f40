"""The wire vectors of docs/PROTOCOL.md#wire-vectors: the guide's own client and server, byte for byte.

Captured on a little-endian machine, one TCP connection per exchange. The codec's
tests, the server's and client's tests and the fuzzers' seed corpus all use these.
"""

from __future__ import annotations

__all__ = ["GUIDE_EXCHANGES"]

#: Request and response bytes of each exchange, by the request's value.
GUIDE_EXCHANGES: dict[str, tuple[bytes, bytes]] = {
    "morpheus": (
        b'\x00g{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 41}{"action": "search", "value": "morpheus"}',
        b'\x00g{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 43}{"result": "Follow the white rabbit. \xf0\x9f\x90\xb0"}',
    ),
    "needle": (
        b'\x00g{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 39}{"action": "search", "value": "needle"}',
        b'\x00g{"byteorder": "little", "content-type": "text/json", "content-encoding": "utf-8", '
        b'"content-length": 36}{"result": "No match for \'needle\'."}',
    ),
    "binary": (
        b'\x00\x7f{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
        b'"content-encoding": "binary", "content-length": 10}binary\xf0\x9f\x98\x83',
        b'\x00\x7f{"byteorder": "little", "content-type": "binary/custom-server-binary-type", '
        b'"content-encoding": "binary", "content-length": 37}'
        b"First 10 bytes of request: binary\xf0\x9f\x98\x83",
    ),
}
