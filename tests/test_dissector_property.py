"""Property: for random lpjson sessions, the Wireshark dissector sees what the codec sees.

Hypothesis draws message sequences (harness.strategies: every valid message shape,
header styles, malformed tails, bad text/json content) and random segmentations,
in both directions, with random MSS, IPv6, a retransmitted or an out-of-order
segment. All sessions go into ONE capture and tshark runs ONCE; every stream is
then compared with the codec's decode of the same bytes.
"""

from __future__ import annotations

import math
from pathlib import Path

from dissector_helpers import assert_clean, check_sessions, require_tshark
from hypothesis import given
from hypothesis import strategies as st

from harness import strategies as lst
from harness.capture.tshark import dissect
from harness.capture.writer import Session, session_packets, write_sessions

_messages = lst.messages(max_content_size=600)
#: Sends per direction kept as drawn; the rest go out in one send (bounds the frame count
#: when a stream is drawn byte by byte, while its first messages still arrive split anywhere).
MAX_SENDS = 40


def _bounded(chunks: list[bytes]) -> list[bytes]:
    return (
        chunks if len(chunks) <= MAX_SENDS else [*chunks[: MAX_SENDS - 1], b"".join(chunks[MAX_SENDS - 1 :])]
    )


def _session(data: st.DataObject) -> Session:
    client = data.draw(lst.streams(max_size=4, message_strategy=_messages), label="client stream")
    payload = client.data
    tail = data.draw(st.sampled_from(["none", "none", "malformed", "bad-content"]), label="tail")
    if tail == "malformed":
        payload += data.draw(lst.malformed_messages(), label="malformed").data
    elif tail == "bad-content":
        payload += data.draw(lst.bad_content_messages(), label="bad content")[0].encode()
    server = data.draw(lst.streams(max_size=2, message_strategy=_messages), label="server stream")
    client_chunks = _bounded(data.draw(lst.chunkings(payload, max_chunks=24), label="client chunks"))
    server_chunks = _bounded(data.draw(lst.chunkings(server.data, max_chunks=8), label="server chunks"))
    mss = data.draw(st.sampled_from([1460, 1460, 536, 64]), label="mss")
    segments = sum(math.ceil(len(c) / mss) for c in [*client_chunks, *server_chunks] if c)
    options: dict[str, object] = {"mss": mss, "ipv6": data.draw(st.booleans(), label="ipv6")}
    trouble = data.draw(st.sampled_from(["none", "none", "retransmit", "out-of-order"]), label="trouble")
    if segments and trouble == "retransmit":
        options["retransmit"] = data.draw(st.integers(0, segments - 1), label="retransmit")
    elif segments > 1 and trouble == "out-of-order":
        options["out_of_order"] = data.draw(st.integers(0, segments - 2), label="out of order")
    session = Session.exchange(client_chunks, server_chunks, comment="random session", **options)
    try:
        session_packets(session)
    except ValueError:  # that segment is not followed by one of the same direction
        options.pop("out_of_order", None)
        session = Session.exchange(client_chunks, server_chunks, comment="random session", **options)
    return session


def test_dissector_equals_codec_on_random_sessions_in_one_capture(tmp_path: Path) -> None:
    require_tshark()
    sessions: list[Session] = []

    @given(st.data())
    def collect(data: st.DataObject) -> None:
        sessions.append(_session(data))

    collect()
    capture = tmp_path / "random.pcapng"
    write_sessions(capture, sessions)
    run = dissect(capture)
    assert_clean(run)
    problems = check_sessions(run, sessions)
    if problems:
        for index in sorted({int(p.split()[1]) for p in problems})[:3]:
            session = sessions[index]
            problems.append(
                f"stream {index}: client bytes {session.stream('client')!r:.2000}, "
                f"sends {[len(s.data) for s in session.sends if hasattr(s, 'data')]}, mss {session.mss}, "
                f"retransmit {session.retransmit}, out_of_order {session.out_of_order}"
            )
    assert not problems, f"{len(sessions)} sessions in {capture}:\n" + "\n".join(problems[:40])


def test_dissector_flags_what_the_codec_raises_on_random_malformed_streams(tmp_path: Path) -> None:
    """Every violation kind of harness.strategies, after zero to two valid messages, cut anywhere."""
    require_tshark()
    sessions: list[Session] = []

    @given(st.data())
    def collect(data: st.DataObject) -> None:
        malformed = data.draw(lst.malformed_messages(), label="malformed")
        valid = data.draw(lst.streams(max_size=2, message_strategy=_messages), label="valid prefix")
        chunks = _bounded(data.draw(lst.chunkings(valid.data + malformed.data, max_chunks=6), label="chunks"))
        sessions.append(Session.exchange(chunks, comment=malformed.kind))

    collect()
    capture = tmp_path / "malformed.pcapng"
    write_sessions(capture, sessions)
    run = dissect(capture)
    assert_clean(run)
    problems = check_sessions(run, sessions)
    assert not problems, f"{len(sessions)} sessions in {capture}:\n" + "\n".join(problems[:40])
