"""Differential checks of the lpjson Wireshark dissector against the codec.

For each direction of each TCP stream, the codec decodes the direction's bytes
(the messages, then the violation it raises, if any); the dissector's records for
that direction must be the same messages with the same field values, in order,
each exactly once, then the same violation flagged with its expert info, then
nothing but "after error" records.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import NoReturn

import pytest

from harness.capture.tshark import Dissected, TsharkRun, find_tshark
from harness.capture.writer import CLIENT, SERVER, Session
from harness.decoder import Decoder
from harness.errors import ContentError, ProtocolError
from harness.message import Message


def skip_unless_tshark_required(reason: str) -> NoReturn:
    """Skip the test for ``reason``; fail it instead under HARNESS_REQUIRE_TSHARK=1 (CI)."""
    if os.environ.get("HARNESS_REQUIRE_TSHARK") == "1":
        pytest.fail(reason + " and HARNESS_REQUIRE_TSHARK=1")
    pytest.skip(reason)


def require_tshark() -> str:
    """The tshark path; skip the test when it is missing (fail instead under HARNESS_REQUIRE_TSHARK=1)."""
    exe = find_tshark()
    if exe is None:
        skip_unless_tshark_required(
            "tshark is not installed (apt-get install tshark); the dissector cannot be tested"
        )
    return exe


@dataclass
class Expected:
    """What the codec makes of one direction of a stream."""

    #: (message, header length, content error code or None)
    messages: list[tuple[Message, int, str | None]] = field(default_factory=list)
    error: str | None = None


def codec_view(data: bytes, ended: bool) -> Expected:
    """Decode ``data`` with the codec; ``ended``: the direction was closed (FIN) after it."""
    decoder = Decoder()
    expected = Expected()
    messages: list[Message] = []
    try:
        messages = decoder.feed(data)
        if ended:
            decoder.close()
    except ProtocolError as error:
        if not messages:  # feed() raised: it hands over the messages it completed first
            messages = error.messages
        expected.error = error.code
    offset = 0
    for message in messages:
        hlen = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2 + hlen + len(message.content)
        content_error = None
        if message.is_json:
            try:
                message.json()
            except ContentError as error:
                content_error = error.code
        expected.messages.append((message, hlen, content_error))
    return expected


def wireshark_string(value: str) -> str:
    """A string as a Wireshark string field holds it: up to the first NUL."""
    return value.split("\x00", 1)[0]


def compare_direction(what: str, expected: Expected, records: list[Dissected]) -> list[str]:
    """Differences between the codec's view and the dissector's records of one direction."""
    problems: list[str] = []
    messages = [r for r in records if r.kind == "message"]
    violations = [r for r in records if r.kind == "violation"]
    truncated = [r for r in records if r.kind == "truncated"]
    if truncated:
        problems.append(
            f"{what}: {len(truncated)} messages cut short (frames {[r.frame for r in truncated]})"
        )
    if len(messages) != len(expected.messages):
        problems.append(
            f"{what}: the dissector shows {len(messages)} messages (frames {[r.frame for r in messages]}), "
            f"the codec decodes {len(expected.messages)}"
        )
    for number, (record, (message, hlen, content_error)) in enumerate(
        zip(messages, expected.messages, strict=False), 1
    ):
        where = f"{what}, message {number} (frame {record.frame})"
        header = message.header
        checks = {
            "header_length": (record.number("header_length"), hlen),
            "byteorder": (record.text("byteorder"), wireshark_string(header["byteorder"])),
            "content_type": (record.text("content_type"), wireshark_string(header["content-type"])),
            "content_encoding": (
                record.text("content_encoding"),
                wireshark_string(header["content-encoding"]),
            ),
            "content_length": (record.number("content_length"), header["content-length"]),
            "content": (record.content, message.content),
            "violation": (record.violation, content_error),
        }
        raw_header = record.text("header")
        try:
            checks["header"] = (json.loads(raw_header) if raw_header is not None else None, header)
        except json.JSONDecodeError as exc:
            problems.append(f"{where}: lpjson.header is not JSON ({exc}): {raw_header!r}")
        for name, (got, want) in checks.items():
            if got != want:
                problems.append(f"{where}: lpjson.{name} is {got!r:.200}, the codec says {want!r:.200}")
        if content_error and f"lpjson.{content_error.replace('-', '_')}" not in record.experts:
            problems.append(f"{where}: no expert info for {content_error} (experts: {record.experts})")
    if expected.error is None:
        if violations:
            problems.append(
                f"{what}: the dissector flags {[v.violation for v in violations]}, the codec accepts"
            )
    else:
        codes = [v.violation for v in violations]
        if codes != [expected.error]:
            problems.append(f"{what}: the dissector flags {codes}, the codec raises {expected.error!r}")
        elif f"lpjson.{expected.error.replace('-', '_')}" not in violations[0].experts:
            problems.append(f"{what}: no expert info for {expected.error} (experts: {violations[0].experts})")
        if violations and messages and (messages[-1].frame > violations[0].frame):
            problems.append(f"{what}: a message follows the violation (frame {messages[-1].frame})")
    after = [r for r in records if r.kind == "after-error"]
    if after and expected.error is None:
        problems.append(f"{what}: 'after error' records without an error (frames {[r.frame for r in after]})")
    return problems


def records_by_direction(run: TsharkRun) -> dict[tuple[int, str], list[Dissected]]:
    """The run's records grouped by (tcp.stream, sender), in frame order."""
    grouped: dict[tuple[int, str], list[Dissected]] = {}
    for record in run.records:
        grouped.setdefault((record.stream, record.sender), []).append(record)
    return grouped


def assert_clean(run: TsharkRun) -> None:
    """No Lua error (stderr or _ws.lua.error), no dissector exception, no bad checksum in the run."""
    assert not run.lua_errors, "Lua errors:\n" + "\n".join(run.lua_errors)
    assert not run.malformed, "dissector exceptions:\n" + "\n".join(run.malformed)
    assert not run.bad_checksums, f"bad IP/TCP checksums in frames {run.bad_checksums}"


def check_sessions(run: TsharkRun, sessions: list[Session]) -> list[str]:
    """Compare the run's records with the codec, stream ``i`` being ``sessions[i]``."""
    grouped: dict[tuple[int, bool], list[Dissected]] = {}
    for record in run.records:
        session = sessions[record.stream]
        is_server = record.sender.endswith(f":{session.server_port}")
        grouped.setdefault((record.stream, is_server), []).append(record)
    problems: list[str] = []
    for index, session in enumerate(sessions):
        for direction in (CLIENT, SERVER):
            expected = codec_view(session.stream(direction), session.closes(direction))
            what = f"stream {index} ({session.comment or 'no comment'}), {direction} side"
            problems += compare_direction(what, expected, grouped.get((index, direction == SERVER), []))
    return problems
