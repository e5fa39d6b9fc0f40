"""Write whole TCP sessions as pcapng captures, deterministically.

A capture shows what the wire would carry for a session: the three-way
handshake, the data of every ``send()`` cut into MSS-sized segments, the peer's
ACKs (every second segment and after each send), and the FIN teardown, with
correct sequence and acknowledgement numbers, IPv4 or IPv6, and checksums
computed by scapy. Timestamps are fixed (they start at :data:`EPOCH_US` and
advance by fixed steps) so one input always gives the same file, byte for byte;
a :class:`Send` may carry the time it really happened (``at_us``), as the
probe's recorded chunks do, and its segments are then timestamped there.

The simplest call writes one exchange::

    from harness.capture import write_session
    write_session("out.pcapng", [request_bytes], [response_bytes], comment="a search")

Many sessions go into one file through :func:`write_sessions` and
:class:`Session`; :class:`Send` interleaves the two directions freely::

    Session([Send("client", b"..."), Send("server", b"..."), Send("client", b"...")])

Packets carry pcapng comments: the session's ``comment`` on its SYN, a note on
each data segment (which stream bytes it carries) and on the retransmitted and
out-of-order segments. The pcapng file is written here (section header,
interface description and enhanced packet blocks), so timestamps are exact
integers of microseconds; scapy builds the packets.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from harness._extras import importing

with importing("harness.capture.writer", "scapy"):
    from scapy.layers.inet import IP, TCP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

__all__ = [
    "CLIENT",
    "DEFAULT_SERVER_PORT",
    "EPOCH_US",
    "SERVER",
    "CapturedPacket",
    "Close",
    "Direction",
    "Send",
    "Session",
    "pcapng_bytes",
    "session_packets",
    "write_session",
    "write_sessions",
    "write_sessions_at",
]

log = logging.getLogger(__name__)

Direction = Literal["client", "server"]
CLIENT: Direction = "client"
SERVER: Direction = "server"

#: First timestamp of a capture: 2024-01-01 00:00:00 UTC, in microseconds.
EPOCH_US = 1_704_067_200_000_000
#: Time between two packets of a session, and the pause before a retransmission.
PACKET_GAP_US = 100
#: The same, in a session whose sends carry their real times.
TIMED_PACKET_GAP_US = 1
RETRANSMIT_GAP_US = 200_000
HANDSHAKE_RTT_US = 2_000
#: Pause between two sessions of one file.
SESSION_GAP_US = 1_000_000

CLIENT_MAC = "02:00:00:00:00:01"
SERVER_MAC = "02:00:00:00:00:02"
CLIENT_IPV4, SERVER_IPV4 = "192.0.2.1", "192.0.2.2"  # TEST-NET-1 (RFC 5737)
CLIENT_IPV6, SERVER_IPV6 = "2001:db8::1", "2001:db8::2"  # documentation prefix (RFC 3849)
DEFAULT_SERVER_PORT = 65432
FIRST_CLIENT_PORT = 49152
WINDOW = 65535
LINKTYPE_ETHERNET = 1


@dataclass(frozen=True)
class Send:
    """What one ``send()`` of ``direction`` carried, with an optional note for its first segment.

    ``at_us``: when it happened, in microseconds after the connection was established
    (the handshake's last ACK); the send's first segment is then timestamped there (or
    just after the previous packet, if that is later). ``None``: right after the previous
    packet.
    """

    direction: Direction
    data: bytes
    note: str = ""
    at_us: int | None = None

    def __post_init__(self) -> None:
        if self.direction not in (CLIENT, SERVER):
            raise ValueError(f"direction must be 'client' or 'server', not {self.direction!r}")
        if self.at_us is not None and self.at_us < 0:
            raise ValueError(f"at_us must be >= 0, not {self.at_us}")


@dataclass(frozen=True)
class Close:
    """``direction`` shuts down its sending side (a FIN); it may still receive."""

    direction: Direction
    note: str = ""


@dataclass(frozen=True)
class Session:
    """One TCP connection and everything both sides sent on it.

    ``retransmit`` and ``out_of_order`` name data segments by their index in
    wire order (0 is the first data segment of the session, either direction).
    The retransmitted segment is sent again after a pause; the out-of-order
    segment is sent after the next segment of the same direction (which must
    follow it directly, e.g. within one ``send()`` larger than ``mss``).
    ``close`` says who sends the first FIN after the last send (``None``: the
    capture ends with the connection open); it is ignored when ``sends``
    holds :class:`Close` events, which place each FIN explicitly.
    ``client_port=None`` lets :func:`write_sessions` pick a distinct port per session.
    """

    sends: Sequence[Send | Close]
    comment: str = ""
    ipv6: bool = False
    client_port: int | None = None
    server_port: int = DEFAULT_SERVER_PORT
    mss: int = 1460
    retransmit: int | None = None
    out_of_order: int | None = None
    close: Direction | None = CLIENT
    client_isn: int = 1_000
    server_isn: int = 5_000

    def __post_init__(self) -> None:
        if not 1 <= self.mss <= 65_000:
            raise ValueError("mss must be between 1 and 65000")
        for port in (self.client_port, self.server_port):
            if port is not None and not 1 <= port <= 65535:
                raise ValueError(f"port {port} is out of range")

    @classmethod
    def exchange(
        cls,
        client_chunks: Iterable[bytes],
        server_chunks: Iterable[bytes] = (),
        **options: object,
    ) -> Session:
        """The client sends ``client_chunks`` (one ``send()`` each), then the server ``server_chunks``."""
        sends = [Send(CLIENT, bytes(c)) for c in client_chunks]
        sends += [Send(SERVER, bytes(c)) for c in server_chunks]
        return cls(sends, **options)  # type: ignore[arg-type]

    def closes(self, direction: Direction) -> bool:
        """Whether ``direction`` sends a FIN in this session."""
        if any(isinstance(s, Close) for s in self.sends):
            return any(isinstance(s, Close) and s.direction == direction for s in self.sends)
        return self.close is not None

    def stream(self, direction: Direction) -> bytes:
        """Every byte ``direction`` sent, in order (what a reassembling reader sees)."""
        return b"".join(s.data for s in self.sends if isinstance(s, Send) and s.direction == direction)


@dataclass
class CapturedPacket:
    """One frame of a capture: its time in microseconds since the epoch, bytes and comments."""

    time_us: int
    data: bytes
    comments: list[str] = field(default_factory=list)


# -- planning the segments ----------------------------------------------------


@dataclass
class _Segment:
    sender: Direction
    seq_offset: int  # offset of the payload in the sender's stream (after the SYN)
    payload: bytes = b""
    flags: str = "A"
    note: str = ""
    pause_us: int = 0  # extra time before this packet
    fin: bool = False
    at_us: int | None = None  # not before this time after the handshake (the send's first segment)


def _other(direction: Direction) -> Direction:
    return SERVER if direction == CLIENT else CLIENT


def _plan(session: Session) -> list[_Segment]:
    """Data segments, ACKs and FINs in the order a well-behaved stack sends them."""
    plan: list[_Segment] = []
    offsets = {CLIENT: 0, SERVER: 0}
    closed = {CLIENT: False, SERVER: False}
    sends = list(session.sends)
    if session.close is not None and not any(isinstance(s, Close) for s in sends):
        sends += [Close(session.close), Close(_other(session.close))]

    def ack(side: Direction) -> _Segment:
        return _Segment(side, offsets[side] + closed[side])

    for index, send in enumerate(sends):
        sender, receiver = send.direction, _other(send.direction)
        if closed[sender]:
            raise ValueError(f"send {index + 1}: the {sender} already closed its side")
        if isinstance(send, Close):
            fin_acks = closed[receiver]
            note = f"{sender} closes (FIN)" + (f"; {send.note}" if send.note else "")
            plan.append(_Segment(sender, offsets[sender], flags="FA", fin=True, note=note))
            closed[sender] = True
            following = sends[index + 1] if index + 1 < len(sends) else None
            if fin_acks or not (isinstance(following, Close) and following.direction == receiver):
                plan.append(ack(receiver))  # else the peer's own FIN carries the ACK
            continue
        data = send.data
        if not data:
            continue
        pieces = [data[i : i + session.mss] for i in range(0, len(data), session.mss)]
        for number, piece in enumerate(pieces):
            last = number == len(pieces) - 1
            start = offsets[sender]
            note = f"{sender} send {index + 1}: {sender} stream bytes {start}..{start + len(piece) - 1}"
            if len(pieces) > 1:
                note += f" (segment {number + 1} of {len(pieces)})"
            if number == 0 and send.note:
                note = f"{send.note}; {note}"
            at_us = send.at_us if number == 0 else None
            plan.append(_Segment(sender, start, piece, "PA" if last else "A", note, at_us=at_us))
            offsets[sender] += len(piece)
            if number % 2 == 1 and not last:
                plan.append(ack(receiver))  # delayed ACK: every second full segment
        following = sends[index + 1] if index + 1 < len(sends) else None
        if not (isinstance(following, Send) and following.direction == receiver and following.data):
            plan.append(ack(receiver))  # else the peer's answer carries the ACK
    return _reorder(session, plan)


def _reorder(session: Session, plan: list[_Segment]) -> list[_Segment]:
    data_positions = [i for i, seg in enumerate(plan) if seg.payload]
    if session.out_of_order is not None:
        k = session.out_of_order
        if not 0 <= k < len(data_positions) - 1:
            raise ValueError(f"out_of_order={k}: the session has {len(data_positions)} data segments")
        first, second = data_positions[k], data_positions[k + 1]
        if second != first + 1 or plan[first].sender != plan[second].sender:
            raise ValueError(
                f"out_of_order={k}: data segment {k} is not directly followed by another segment "
                "of the same direction (send more than one MSS at once)"
            )
        plan[first], plan[second] = plan[second], plan[first]
        plan[second].note = f"sent out of order (after the next segment); {plan[second].note}"
        data_positions = [i for i, seg in enumerate(plan) if seg.payload]
    if session.retransmit is not None:
        k = session.retransmit
        if not 0 <= k < len(data_positions):
            raise ValueError(f"retransmit={k}: the session has {len(data_positions)} data segments")
        original = plan[data_positions[k]]
        copy = _Segment(
            original.sender,
            original.seq_offset,
            original.payload,
            original.flags,
            f"retransmission of {original.sender} stream bytes "
            f"{original.seq_offset}..{original.seq_offset + len(original.payload) - 1}",
            pause_us=RETRANSMIT_GAP_US,
        )
        # before the peer's ACK: a plain retransmission by timeout (an ACKed copy is "spurious")
        plan.insert(data_positions[k] + 1, copy)
    return plan


# -- building the packets -----------------------------------------------------


class _Receiver:
    """What one side has received in order so far (its next ACK number, as a stream offset)."""

    def __init__(self) -> None:
        self.next = 0
        self.held: dict[int, int] = {}  # out-of-order segments: start -> end
        self.fin = False

    def receive(self, start: int, end: int) -> bool:
        """Take a segment; return True when it arrived out of order."""
        if start > self.next:
            self.held[start] = end
            return True
        self.next = max(self.next, end)
        while self.held:
            ready = [s for s in self.held if s <= self.next]
            if not ready:
                break
            for s in ready:
                self.next = max(self.next, self.held.pop(s))
        return False


def session_packets(
    session: Session, start_us: int = EPOCH_US, client_port: int | None = None
) -> list[CapturedPacket]:
    """Every frame of ``session``, timestamped from ``start_us`` in fixed steps."""
    port = client_port if client_port is not None else session.client_port
    if port is None:
        port = FIRST_CLIENT_PORT
    if session.ipv6:
        addr = {CLIENT: CLIENT_IPV6, SERVER: SERVER_IPV6}
    else:
        addr = {CLIENT: CLIENT_IPV4, SERVER: SERVER_IPV4}
    mac = {CLIENT: CLIENT_MAC, SERVER: SERVER_MAC}
    tcp_port = {CLIENT: port, SERVER: session.server_port}
    isn = {CLIENT: session.client_isn, SERVER: session.server_isn}
    ip_id = {CLIENT: 1, SERVER: 1}

    def frame(
        sender: Direction,
        flags: str,
        seq: int,
        ack: int | None,
        payload: bytes = b"",
        options: list[tuple[str, int]] | None = None,
    ) -> bytes:
        receiver = _other(sender)
        tcp = TCP(
            sport=tcp_port[sender],
            dport=tcp_port[receiver],
            flags=flags,
            seq=seq & 0xFFFFFFFF,
            ack=(ack or 0) & 0xFFFFFFFF,
            window=WINDOW,
            options=options or [],
        )
        ip: IP | IPv6
        if session.ipv6:
            ip = IPv6(src=addr[sender], dst=addr[receiver], hlim=64)
        else:
            ip = IP(src=addr[sender], dst=addr[receiver], ttl=64, id=ip_id[sender], flags="DF")
            ip_id[sender] += 1
        layers = Ether(src=mac[sender], dst=mac[receiver]) / ip / tcp
        if payload:
            layers = layers / Raw(payload)
        return bytes(layers)

    packets: list[CapturedPacket] = []
    now = start_us
    # sends at their real times: the packets between them a microsecond apart, so that
    # they do not push a send that really followed within PACKET_GAP_US
    timed = any(isinstance(s, Send) and s.at_us is not None for s in session.sends)
    gap = TIMED_PACKET_GAP_US if timed else PACKET_GAP_US

    def emit(data: bytes, comments: list[str], pause: int = 0) -> None:
        nonlocal now
        now += pause
        packets.append(CapturedPacket(now, data, [c for c in comments if c]))
        now += gap

    mss_option = [("MSS", min(session.mss, 65495))]
    emit(frame(CLIENT, "S", isn[CLIENT], None, options=mss_option), [session.comment, "client opens (SYN)"])
    # a round trip of HANDSHAKE_RTT_US: Wireshark then tells a late segment (out of order)
    # from a retransmission
    emit(frame(SERVER, "SA", isn[SERVER], isn[CLIENT] + 1, options=mss_option), [], HANDSHAKE_RTT_US)
    emit(frame(CLIENT, "A", isn[CLIENT] + 1, isn[SERVER] + 1), [])
    established_us = now - gap

    received = {CLIENT: _Receiver(), SERVER: _Receiver()}  # keyed by the receiving side
    sent_end = {CLIENT: 0, SERVER: 0}
    plan = _plan(session)
    for seg in plan:
        sender, receiver = seg.sender, _other(seg.sender)
        ack_offset = received[sender].next + (1 if received[sender].fin else 0)
        seq = isn[sender] + 1 + seg.seq_offset
        ack = isn[receiver] + 1 + ack_offset
        if seg.at_us is not None:
            now = max(now, established_us + seg.at_us)
        emit(frame(sender, seg.flags, seq, ack, seg.payload), [seg.note], seg.pause_us)
        if seg.payload:
            end = seg.seq_offset + len(seg.payload)
            out_of_order = received[receiver].receive(seg.seq_offset, end)
            sent_end[sender] = max(sent_end[sender], end)
            if out_of_order:  # the receiver says at once what it is missing (a duplicate ACK)
                dup = isn[receiver] + 1 + sent_end[receiver]
                emit(
                    frame(receiver, "A", dup, isn[sender] + 1 + received[receiver].next),
                    [
                        f"duplicate ACK: {receiver} still waits for "
                        f"{sender} stream byte {received[receiver].next}"
                    ],
                )
        if seg.fin:
            received[receiver].fin = True
    return packets


def _pad4(data: bytes) -> bytes:
    return data + b"\x00" * (-len(data) % 4)


def _block(block_type: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", block_type, length) + body + struct.pack("<I", length)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


_END_OF_OPTIONS = struct.pack("<HH", 0, 0)


def pcapng_bytes(packets: Iterable[CapturedPacket], application: str = "harness") -> bytes:
    """A pcapng file (one Ethernet interface, microsecond timestamps) holding ``packets``."""
    shb = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _option(4, application.encode()) + _END_OF_OPTIONS
    idb = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 262_144) + _option(9, b"\x06") + _END_OF_OPTIONS
    out = [_block(0x0A0D0D0A, shb), _block(1, idb)]
    for packet in packets:
        body = struct.pack(
            "<IIIII", 0, packet.time_us >> 32, packet.time_us & 0xFFFFFFFF, len(packet.data), len(packet.data)
        ) + _pad4(packet.data)
        if packet.comments:
            body += b"".join(_option(1, c.encode("utf-8")) for c in packet.comments) + _END_OF_OPTIONS
        out.append(_block(6, body))
    return b"".join(out)


def write_sessions(path: str | Path, sessions: Iterable[Session], start_us: int = EPOCH_US) -> int:
    """Write ``sessions`` one after the other into the pcapng file ``path``; return the frame count.

    Sessions without a ``client_port`` get 49152, 49153, ... in order, so
    every session is its own TCP stream.
    """
    packets: list[CapturedPacket] = []
    now = start_us
    for number, session in enumerate(sessions):
        port = session.client_port if session.client_port is not None else FIRST_CLIENT_PORT + number % 16_000
        frames = session_packets(session, now, port)
        packets += frames
        now = frames[-1].time_us + SESSION_GAP_US
    Path(path).write_bytes(pcapng_bytes(packets))
    log.debug("wrote %d frames to %s", len(packets), path)
    return len(packets)


def write_sessions_at(
    path: str | Path, timed: Iterable[tuple[int, Session]], start_us: int = EPOCH_US
) -> int:
    """Write sessions that overlap in time into ``path`` (pcapng); return the frame count.

    Each ``(offset_us, session)`` opens (its SYN) ``offset_us`` microseconds after
    ``start_us``; the frames of all sessions are merged in time order (a tie keeps the
    order of ``timed``). Sessions without a ``client_port`` get 49152, 49153, ... in order.
    """
    packets: list[tuple[int, int, CapturedPacket]] = []
    for number, (offset_us, session) in enumerate(timed):
        if offset_us < 0:
            raise ValueError(f"session {number + 1}: offset_us must be >= 0, not {offset_us}")
        port = session.client_port if session.client_port is not None else FIRST_CLIENT_PORT + number % 16_000
        packets += [(p.time_us, number, p) for p in session_packets(session, start_us + offset_us, port)]
    packets.sort(key=lambda entry: (entry[0], entry[1]))
    Path(path).write_bytes(pcapng_bytes(p for _, _, p in packets))
    log.debug("wrote %d frames to %s", len(packets), path)
    return len(packets)


def write_session(
    path: str | Path,
    client_chunks: Iterable[bytes],
    server_chunks: Iterable[bytes] = (),
    *,
    sends: Sequence[Send | Close] | None = None,
    comment: str = "",
    ipv6: bool = False,
    client_port: int | None = None,
    server_port: int = DEFAULT_SERVER_PORT,
    mss: int = 1460,
    retransmit: int | None = None,
    out_of_order: int | None = None,
    close: Direction | None = CLIENT,
) -> int:
    """Write one session to ``path``: the client sends ``client_chunks`` (one ``send()``
    each), then the server sends ``server_chunks``; or, with ``sends``, exactly those
    sends in that order (``client_chunks`` and ``server_chunks`` must then be empty).
    Returns the number of frames written."""
    client_chunks, server_chunks = list(client_chunks), list(server_chunks)
    if sends is not None:
        if client_chunks or server_chunks:
            raise ValueError("give either sends or client_chunks/server_chunks, not both")
        all_sends: list[Send | Close] = list(sends)
    else:
        all_sends = [Send(CLIENT, bytes(c)) for c in client_chunks]
        all_sends += [Send(SERVER, bytes(c)) for c in server_chunks]
    session = Session(
        all_sends,
        comment=comment,
        ipv6=ipv6,
        client_port=client_port,
        server_port=server_port,
        mss=mss,
        retransmit=retransmit,
        out_of_order=out_of_order,
        close=close,
    )
    return write_sessions(path, [session])
