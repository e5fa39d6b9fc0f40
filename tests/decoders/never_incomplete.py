"""close() never complains: a stream cut short inside a message ends like any other (F4)."""

from __future__ import annotations

from .strict import Decoder


class NeverIncompleteDecoder(Decoder):
    def close(self) -> None:
        self._buffer.clear()


factory = NeverIncompleteDecoder
