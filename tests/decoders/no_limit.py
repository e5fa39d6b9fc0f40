"""No content limit: a header declaring 2**40 bytes is believed, and its content awaited (L1)."""

from __future__ import annotations

from .strict import Decoder


class NoLimitDecoder(Decoder):
    max_content_length = 1 << 62


factory = NoLimitDecoder
