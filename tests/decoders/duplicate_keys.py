"""The guide's ``json.loads`` for the header: a repeated key is no error, the last one wins (H4)."""

from __future__ import annotations

import json
from typing import Any

from .strict import Decoder, LpjsonError


class DuplicateKeysDecoder(Decoder):
    def parse_json(self, text: str) -> Any:
        def constant(name: str) -> float:
            raise LpjsonError("non-finite-number")

        def number(literal: str) -> float:
            value = float(literal)
            if value in (float("inf"), float("-inf")):
                raise LpjsonError("non-finite-number")
            return value

        try:
            return json.loads(text, parse_constant=constant, parse_float=number)
        except ValueError as exc:
            raise LpjsonError("header-not-json", str(exc)) from None


factory = DuplicateKeysDecoder
