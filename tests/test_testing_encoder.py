"""harness.testing.check_encoder: harness's encoder and the guide's pass; wrong ones are caught."""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import settings

from harness import Message
from harness.testing import EncoderCheckFailure, check_encoder

BUDGET = settings(max_examples=40, derandomize=True, database=None)
REQUIRED = ("byteorder", "content-type", "content-encoding", "content-length")


def harness_encode(header: dict[str, Any], content: bytes) -> bytes:
    return Message(dict(header), content).encode()


def guide_encode(header: dict[str, Any], content: bytes, **dumps: Any) -> bytes:
    """The guide's _create_message, with the extension keys after the required ones."""
    ordered = {key: header[key] for key in REQUIRED}
    ordered.update((k, v) for k, v in header.items() if k not in REQUIRED)
    raw = json.dumps(ordered, **{"ensure_ascii": False, **dumps}).encode("utf-8")
    return struct.pack(">H", len(raw)) + raw + content


def test_harness_encoder_passes() -> None:
    check_encoder(harness_encode, settings=BUDGET)


def test_the_guides_encoder_passes() -> None:
    check_encoder(guide_encode, settings=BUDGET)


def test_ensure_ascii_is_caught() -> None:
    with pytest.raises(EncoderCheckFailure) as caught:
        check_encoder(lambda h, c: guide_encode(h, c, ensure_ascii=True), settings=BUDGET)
    assert [(f.check, f.rule) for f in caught.value.failures] == [("messages", "E1")]
    assert "\\\\u" in str(caught.value) or "\\u" in str(caught.value)


def test_keys_in_another_order_are_caught() -> None:
    def dict_order(header: dict[str, Any], content: bytes) -> bytes:
        raw = json.dumps(header, ensure_ascii=False).encode()
        return struct.pack(">H", len(raw)) + raw + content

    def sorted_keys(header: dict[str, Any], content: bytes) -> bytes:
        return guide_encode(header, content, sort_keys=True)

    with pytest.raises(EncoderCheckFailure) as caught:
        check_encoder(sorted_keys, settings=BUDGET)
    assert {f.check for f in caught.value.failures} >= {"vector:request-morpheus", "messages"}
    with pytest.raises(EncoderCheckFailure) as caught:
        check_encoder(dict_order, settings=BUDGET)  # the vectors pass; shuffled headers do not
    assert [(f.check, f.rule) for f in caught.value.failures] == [("messages", "E1")]


def test_an_encoder_whose_bytes_do_not_decode_is_caught() -> None:
    def off_by_one(header: dict[str, Any], content: bytes) -> bytes:
        raw = json.dumps(header, ensure_ascii=False).encode()
        return struct.pack(">H", len(raw) + 1) + raw + content

    with pytest.raises(EncoderCheckFailure) as caught:
        check_encoder(off_by_one, settings=BUDGET)
    assert "harness's decoder refuses" in str(caught.value)
