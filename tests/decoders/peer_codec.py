"""The guide's ``process_request``: text/json content decoded with the codec the peer names (C2).

``content.decode(header["content-encoding"])`` runs any codec Python has: ``utf-7``,
``cp1252``, ``idna``... The content comes back as the JSON value it holds.
"""

from __future__ import annotations

import io
import json
from typing import Any

from .strict import Decoder


class PeerCodecDecoder(Decoder):
    def read_content(self, header: dict[str, Any], content: bytes) -> Any:
        if header["content-type"] != "text/json":
            return content
        encoding = header["content-encoding"]
        # the guide's _json_decode
        wrapper = io.TextIOWrapper(io.BytesIO(content), encoding=encoding, newline="")
        value = json.load(wrapper)
        wrapper.close()
        return value


factory = PeerCodecDecoder
