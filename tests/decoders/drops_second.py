"""One message per read, as the guide's server has it: what follows the first message in the
same chunk is thrown away with the buffer (F3)."""

from __future__ import annotations

from typing import Any

from .strict import Decoder


class DropsSecondDecoder(Decoder):
    def feed(self, data: bytes) -> list[tuple[dict[str, Any], Any]]:
        messages = super().feed(data)
        if messages:
            # done with this request: reset for the next one, as the guide's Message object does
            self._buffer.clear()
            self._header_length = self._header = None
        return messages[:1]


factory = DropsSecondDecoder
