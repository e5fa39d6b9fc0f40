"""One recv() is one message: each chunk is parsed as a whole message on its own (F2).

The shape of the first thing a reader writes after the guide's echo server::

    data = sock.recv(4096)
    hdrlen = struct.unpack(">H", data[:2])[0]
    header = json.loads(data[2 : 2 + hdrlen])
    content = data[2 + hdrlen : 2 + hdrlen + header["content-length"]]
"""

from __future__ import annotations

import struct
from typing import Any

from .strict import Decoder, LpjsonError


class OneRecvDecoder:
    def __init__(self) -> None:
        self._checker = Decoder()

    def feed(self, data: bytes) -> list[tuple[dict[str, Any], bytes]]:
        if not data:
            return []
        if len(data) < 2:
            raise LpjsonError("incomplete-message", "no prefix")
        (hdrlen,) = struct.unpack(">H", data[:2])
        if hdrlen == 0:
            raise LpjsonError("zero-header-length")
        header = self._checker.read_header(data[2 : 2 + hdrlen])
        content = data[2 + hdrlen : 2 + hdrlen + header["content-length"]]
        return [(header, content)]

    def close(self) -> None:
        pass


factory = OneRecvDecoder
