"""The dissector against the table of violations (harness.violations), row by row.

For every error code: its canonical example after a valid request, and examples drawn
with the row's generator after a valid prefix, cut into segments. One capture, one
tshark run; each stream must be flagged with exactly its row's code (and expert info),
and otherwise dissected as the codec decodes it. A new row is covered here as soon as
it is in the table.
"""

from __future__ import annotations

from pathlib import Path

from dissector_helpers import assert_clean, check_sessions, require_tshark
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import strategies as lst
from harness.capture.tshark import dissect
from harness.capture.writer import Session, write_sessions
from harness.message import Message
from harness.violations import VIOLATIONS, Violation

#: Drawn examples per row, on top of the canonical one.
DRAWN = 6

_VALID = Message.from_json({"action": "search", "value": "ring"}, byteorder="little").encode()


def _drawn_sessions(row: Violation) -> list[Session]:
    sessions: list[Session] = []

    @settings(max_examples=DRAWN, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data: st.DataObject) -> None:
        example = row.generate(data.draw)
        prefix = data.draw(lst.streams(max_size=2, message_strategy=lst.search_requests()), label="prefix")
        chunks = data.draw(lst.chunkings(prefix.data + example.data, max_chunks=4), label="chunks")
        sessions.append(Session.exchange(chunks, comment=f"{row.code}: {example.description}"))

    collect()
    return sessions


def test_dissector_flags_every_row_of_the_violation_table_with_its_code(tmp_path: Path) -> None:
    require_tshark()
    sessions: list[Session] = []
    codes: list[str] = []
    for row in VIOLATIONS.values():
        drawn = [
            Session.exchange([_VALID, row.example.data], comment=f"{row.code}: {row.example.description}"),
            *_drawn_sessions(row),
        ]
        sessions += drawn
        codes += [row.code] * len(drawn)
    capture = tmp_path / "violations.pcapng"
    write_sessions(capture, sessions)
    run = dissect(capture)
    assert_clean(run)
    problems = check_sessions(run, sessions)
    assert not problems, "\n".join(problems[:40])
    flagged: dict[int, list[str]] = {}
    for record in run.records:
        if record.violation is not None:
            flagged.setdefault(record.stream, []).append(record.violation)
    for index, code in enumerate(codes):
        assert flagged.get(index) == [code], (
            f"stream {index} ({sessions[index].comment}): {flagged.get(index)}"
        )
