"""The guide's ``json.loads`` for the header: ``NaN``, ``Infinity`` and ``1e400`` are numbers (H3)."""

from __future__ import annotations

import json
from typing import Any

from .strict import Decoder, LpjsonError


class AcceptsNaNDecoder(Decoder):
    def parse_json(self, text: str) -> Any:
        def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
            if len({k for k, _ in items}) != len(items):
                raise LpjsonError("duplicate-key")
            return dict(items)

        try:
            return json.loads(text, object_pairs_hook=pairs)
        except ValueError as exc:
            raise LpjsonError("header-not-json", str(exc)) from None


factory = AcceptsNaNDecoder
