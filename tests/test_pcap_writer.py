"""The capture writer: what it writes is a correct, deterministic TCP session.

Read back with scapy (independent of the writer's own bookkeeping): checksums
recompute to the same values, sequence and ACK numbers add up, every direction
reassembles to exactly the bytes sent, segments respect the MSS.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader

from harness import strategies as lst
from harness.capture.writer import (
    CLIENT,
    EPOCH_US,
    SERVER,
    Close,
    Send,
    Session,
    pcapng_bytes,
    session_packets,
    write_session,
    write_sessions,
)


def _read(path: Path) -> list[tuple[Ether, list[bytes], float]]:
    with PcapNgReader(str(path)) as reader:
        return [(pkt, list(getattr(pkt, "comments", None) or []), float(pkt.time)) for pkt in reader]


def _check_tcp(session: Session, frames: list[Ether]) -> None:
    """Checksums, handshake, seq/ack arithmetic and reassembly of each direction."""
    client_port = frames[0][TCP].sport
    isn: dict[str, int] = {}
    pieces: dict[str, dict[int, bytes]] = {CLIENT: {}, SERVER: {}}
    sent_end = {CLIENT: 0, SERVER: 0}
    fins = {CLIENT: False, SERVER: False}
    for number, frame in enumerate(frames):
        ip = frame[IPv6] if session.ipv6 else frame[IP]
        tcp = frame[TCP]
        if not session.ipv6:
            rebuilt_ip = IP(bytes(ip))
            del rebuilt_ip.chksum
            assert IP(bytes(rebuilt_ip)).chksum == ip.chksum, f"frame {number}: IPv4 checksum"
        rebuilt = type(ip)(bytes(ip))
        del rebuilt[TCP].chksum
        assert type(ip)(bytes(rebuilt))[TCP].chksum == tcp.chksum, f"frame {number}: TCP checksum"
        side = CLIENT if tcp.sport == client_port else SERVER
        other = SERVER if side == CLIENT else CLIENT
        flags = str(tcp.flags)
        if "S" in flags:
            isn[side] = tcp.seq
            assert ("A" in flags) == (side == SERVER)
            continue
        offset = tcp.seq - isn[side] - 1
        payload = bytes(tcp.payload)
        assert len(payload) <= session.mss, f"frame {number}: {len(payload)} bytes > MSS {session.mss}"
        if payload:
            pieces[side][offset] = payload
            sent_end[side] = max(sent_end[side], offset + len(payload))
        # an ACK never acknowledges what the peer has not sent yet
        acked = tcp.ack - isn[other] - 1
        assert acked <= sent_end[other] + (1 if fins[other] else 0), f"frame {number}: ACK beyond sent data"
        if "F" in flags:
            assert offset == len(session.stream(side)), f"frame {number}: FIN not after the last byte"
            fins[side] = True
    for side in (CLIENT, SERVER):
        data = b"".join(pieces[side][k] for k in sorted(pieces[side]))
        assert data == session.stream(side), f"{side} direction does not reassemble to what was sent"
        assert fins[side] == session.closes(side)


@given(
    client=st.lists(st.binary(max_size=3000), max_size=5),
    server=st.lists(st.binary(max_size=3000), max_size=3),
    mss=st.sampled_from([1460, 536, 100, 1]),
    ipv6=st.booleans(),
)
def test_writer_session_reassembles_with_valid_checksums(
    tmp_path_factory: pytest.TempPathFactory, client: list[bytes], server: list[bytes], mss: int, ipv6: bool
) -> None:
    if mss == 1:
        client, server = [c[:40] for c in client], [s[:40] for s in server]
    session = Session.exchange(client, server, mss=mss, ipv6=ipv6, comment="property")
    path = tmp_path_factory.mktemp("w") / "s.pcapng"
    write_sessions(path, [session])
    frames = [f for f, _, _ in _read(path)]
    _check_tcp(session, frames)


def test_writer_output_is_byte_identical_every_run(tmp_path: Path) -> None:
    session = Session.exchange([b"a" * 5000, b"b"], [b"c" * 3000], retransmit=1, out_of_order=0, comment="x")
    write_sessions(tmp_path / "1.pcapng", [session])
    write_sessions(tmp_path / "2.pcapng", [session])
    assert (tmp_path / "1.pcapng").read_bytes() == (tmp_path / "2.pcapng").read_bytes()


def test_writer_timestamps_are_exact_microseconds_and_increase(tmp_path: Path) -> None:
    path = tmp_path / "t.pcapng"
    write_sessions(path, [Session.exchange([b"x"]), Session.exchange([b"y"], ipv6=True)])
    times = [t for _, _, t in _read(path)]
    assert times[0] == EPOCH_US / 1_000_000
    assert times == sorted(times)
    packets = session_packets(Session.exchange([b"x"]))
    assert all(isinstance(p.time_us, int) for p in packets)


def test_writer_puts_comments_on_packets(tmp_path: Path) -> None:
    path = tmp_path / "c.pcapng"
    write_session(path, [b"hello"], [b"world"], comment="what this shows")
    records = _read(path)
    assert b"what this shows" in records[0][1]
    data_comments = [c for frame, comments, _ in records if bytes(frame[TCP].payload) for c in comments]
    assert b"client send 1: client stream bytes 0..4" in data_comments
    assert b"server send 2: server stream bytes 0..4" in data_comments


def test_writer_splits_sends_larger_than_mss_and_acks_every_second_segment(tmp_path: Path) -> None:
    path = tmp_path / "m.pcapng"
    write_session(path, [b"z" * 2500], mss=500)
    frames = [f for f, _, _ in _read(path)]
    client_port = frames[0][TCP].sport
    sizes = [
        len(bytes(f[TCP].payload)) for f in frames if f[TCP].sport == client_port and bytes(f[TCP].payload)
    ]
    assert sizes == [500] * 5
    server_acks = [f for f in frames[3:] if f[TCP].sport != client_port and str(f[TCP].flags) == "A"]
    assert len(server_acks) == 3  # after segments 2 and 4, and after the send


def test_writer_retransmission_repeats_a_segment_and_out_of_order_swaps_two(tmp_path: Path) -> None:
    session = Session.exchange([b"q" * 1200], mss=500, out_of_order=0, retransmit=2)
    path = tmp_path / "r.pcapng"
    write_sessions(path, [session])
    frames = [f for f, _, _ in _read(path)]
    client_port = frames[0][TCP].sport
    seqs = [
        f[TCP].seq - frames[0][TCP].seq - 1
        for f in frames
        if f[TCP].sport == client_port and bytes(f[TCP].payload)
    ]
    assert seqs == [500, 0, 1000, 1000]
    _check_tcp(session, frames)


def test_writer_half_close_lets_the_server_answer_after_the_client_fin(tmp_path: Path) -> None:
    session = Session([Send(CLIENT, b"partial"), Close(CLIENT), Send(SERVER, b"error"), Close(SERVER)])
    path = tmp_path / "h.pcapng"
    write_sessions(path, [session])
    _check_tcp(session, [f for f, _, _ in _read(path)])


def test_writer_rejects_impossible_options() -> None:
    with pytest.raises(ValueError, match="out_of_order"):
        session_packets(Session.exchange([b"a", b"b"], out_of_order=0))  # an ACK comes between them
    with pytest.raises(ValueError, match="retransmit"):
        session_packets(Session.exchange([b"a"], retransmit=3))
    with pytest.raises(ValueError, match="already closed"):
        session_packets(Session([Close(CLIENT), Send(CLIENT, b"late")]))
    with pytest.raises(ValueError, match="direction"):
        Send("nobody", b"")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mss"):
        Session([], mss=0)


def test_writer_gives_each_session_of_a_file_its_own_client_port(tmp_path: Path) -> None:
    path = tmp_path / "p.pcapng"
    write_sessions(path, [Session.exchange([b"a"]) for _ in range(3)])
    syns = [f[TCP].sport for f, _, _ in _read(path) if str(f[TCP].flags) == "S"]
    assert len(set(syns)) == 3


# each example builds and re-parses ~100 packets with scapy; the test above covers arbitrary bytes
@settings(max_examples=40)
@given(lst.streams(max_size=3, message_strategy=lst.messages(max_content_size=800)), st.data())
def test_writer_carries_any_lpjson_stream_unchanged(stream: lst.Stream, data: st.DataObject) -> None:
    chunks = data.draw(lst.chunkings(stream.data, max_chunks=8))
    if len(chunks) > 30:  # byte by byte: keep the first sends, the rest in one (bounds the run time)
        chunks = [*chunks[:29], b"".join(chunks[29:])]
    session = Session.exchange(chunks, mss=data.draw(st.sampled_from([1460, 100])))
    packets = session_packets(session)
    frames = [Ether(p.data) for p in packets]
    _check_tcp(session, frames)
    assert pcapng_bytes(packets) == pcapng_bytes(session_packets(session))
