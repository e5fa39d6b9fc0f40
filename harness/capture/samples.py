"""The sample captures: one pcapng file per case worth seeing in Wireshark.

Every server response in them comes from the reference server's sans-IO
connection (:class:`~harness.connection.ServerConnection`, which answers with
:func:`harness.apps.search_app` and :func:`harness.message.error_response`), fed the
client's sends one by one, so a capture shows exactly what the reference
server answers, send by send. ``harness pcap samples --out DIR`` writes them
with a README; ``pcaps/`` in the repository holds the committed set. The
violation samples show the canonical example of each row of
:data:`harness.violations.VIOLATIONS`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.capture.writer import CLIENT, SERVER, Close, Send, Session, write_sessions
from harness.connection import ServerConnection
from harness.frames import FrameReader
from harness.message import Message
from harness.violations import Violation, content_violations, first_error, stream_violations

__all__ = [
    "OTHER_PORT",
    "Sample",
    "conversation",
    "readme",
    "samples",
    "write_samples",
]

log = logging.getLogger(__name__)

#: The port of the "other port" sample (found by the dissector's heuristic).
OTHER_PORT = 8765


def _search(value: str) -> Message:
    return Message.from_json({"action": "search", "value": value}, byteorder="little")


def _binary(content: bytes) -> Message:
    return Message.from_bytes(content, byteorder="little")


@dataclass(frozen=True)
class Sample:
    """One capture file: its name, what it shows, what to look at, and its sessions."""

    name: str
    title: str
    look_for: str
    sessions: list[Session]
    #: Violation codes the file shows, one per offending message, in file order.
    violations: list[str] = field(default_factory=list)

    @property
    def filename(self) -> str:
        return f"{self.name}.pcapng"


def conversation(
    client_sends: Sequence[bytes | Send],
    *,
    comment: str,
    client_closes: bool = True,
    **options: object,
) -> Session:
    """A session in which the reference server answers ``client_sends`` as they arrive.

    After each client send the server sends whatever its connection returns
    (nothing while a message is incomplete); when the connection must close
    (a protocol error) the server closes right after its error message and
    the client closes too. Otherwise the client closes after its last send
    (``client_closes``), the server answers the EOF and closes.
    """
    conn = ServerConnection()
    events: list[Send | Close] = []
    for item in client_sends:
        send = item if isinstance(item, Send) else Send(CLIENT, item)
        events.append(send)
        out = conn.receive_data(send.data)
        if out:
            events.append(Send(SERVER, out))
        if conn.closed:
            events += [Close(SERVER, "the server closes after its error message"), Close(CLIENT)]
            return Session(events, comment=comment, **options)  # type: ignore[arg-type]
    if client_closes:
        events.append(Close(CLIENT))
        out = conn.receive_eof()
        if out:
            events.append(Send(SERVER, out, "the server answers the end of the stream"))
        events.append(Close(SERVER))
    return Session(events, comment=comment, **options)  # type: ignore[arg-type]


def _cut(data: bytes, *cuts: int) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def _check_violation(row: Violation) -> None:
    error = first_error(row.example.data)
    if error is None:
        raise AssertionError(f"the example of {row.code!r} decodes without error")
    if error.code != row.code:
        raise AssertionError(f"the example of {row.code!r} raises {error.code!r}: {error}")


def samples() -> list[Sample]:
    """The sample set, in file order."""
    out: list[Sample] = []
    for number, (value, name) in enumerate(
        [("morpheus", "morpheus"), ("ring", "ring"), ("🐶", "dog"), ("needle", "miss")], start=1
    ):
        request = _search(value).encode()
        out.append(
            Sample(
                f"{number:02d}-search-{name}",
                f"The guide's search for {value!r}: one request, one response, one connection.",
                f"Info column: `search '{value}'`, then the result; the JSON content decoded in the tree.",
                [conversation([request], comment=f"search for {value!r}")],
            )
        )
    binary = _binary("binary😃".encode()).encode()
    out.append(
        Sample(
            "05-binary",
            "A binary request (the guide's `binary` + 😃) and the server's binary answer.",
            "`binary, 10 bytes` and `binary, 37 bytes`; the content as bytes, "
            "content-type and encoding fields.",
            [conversation([binary], comment="a binary request")],
        )
    )
    fetch = Message.from_json({"action": "fetch", "value": "morpheus"}, byteorder="little").encode()
    out.append(
        Sample(
            "06-invalid-action",
            "A text/json request whose action is not `search`.",
            "The request `fetch 'morpheus'` and the answer `result 'Error: invalid action ...'`.",
            [conversation([fetch], comment="an invalid action")],
        )
    )
    pipelined = [
        _search("morpheus").encode(),
        _binary(b"0123456789abcdef").encode(),
        _search("ring").encode(),
    ]
    joined = b"".join(pipelined)
    middle = len(pipelined[0]) + 50
    out.append(
        Sample(
            "07-pipelined",
            "Three pipelined requests in two segments: the first segment ends inside the second request.",
            "The first data segment holds one whole request and the start of the next; the second completes "
            "it and holds the third: each request is dissected once, in the frame where it ends.",
            [conversation(_cut(joined, middle), comment="pipelined requests across segment boundaries")],
        )
    )
    three = b"".join([_search("morpheus").encode(), _search("ring").encode(), _search("🐶").encode()])
    out.append(
        Sample(
            "08-three-in-one-segment",
            "Three requests in one segment, and the three responses in one segment.",
            "One frame, three lpjson trees; the Info column lists all three.",
            [conversation([three], comment="three messages in one segment each way")],
        )
    )
    morpheus = _search("morpheus").encode()
    (morpheus_frame,) = FrameReader().feed(morpheus)
    header_end = len(morpheus) - len(morpheus_frame.content)  # the prefix and the JSON header
    out.append(
        Sample(
            "09-split-prefix",
            "A request split inside its 2-byte length prefix (1 byte, then the rest).",
            "The first data frame is `[TCP segment of a reassembled PDU]`; "
            "the request is dissected in the next.",
            [conversation(_cut(morpheus, 1), comment="split inside the 2-byte prefix")],
        )
    )
    out.append(
        Sample(
            "10-split-header",
            "A request split twice inside its JSON header.",
            "Three segments, one message: `Reassembled TCP` tab in the bytes pane.",
            [conversation(_cut(morpheus, 20, 60), comment="split inside the JSON header")],
        )
    )
    out.append(
        Sample(
            "11-split-content",
            "A request split inside its content.",
            "The header is complete in the first segment, the content ends in the second.",
            [conversation(_cut(morpheus, header_end + 12), comment="split inside the content")],
        )
    )
    large = _binary(bytes(range(256)) * 390 + bytes(range(160))).encode()
    out.append(
        Sample(
            "12-large-100k",
            "One 100,000-byte binary request sent at once: about 70 MSS-sized segments.",
            "The last segment carries the dissected request; every other one is a segment of it.",
            [conversation([large], comment="a 100 KB message across many segments")],
        )
    )
    sessions, codes = [], []
    for row in stream_violations():
        _check_violation(row)
        what = row.example.description
        sessions.append(
            conversation(
                [
                    Send(CLIENT, _search("ring").encode(), "a valid request first"),
                    Send(CLIENT, row.example.data, f"{row.code}: {what}"),
                ],
                comment=f"violation {row.code}: {what}",
            )
        )
        codes.append(row.code)
    out.append(
        Sample(
            "13-violations",
            "Every violation class of docs/PROTOCOL.md, one TCP stream each: "
            "a valid request, then the bad message.",
            "Expert info (Analyze > Expert Information) lists one error per stream; the server's error "
            "message follows and it closes. Filter: `lpjson.violation`.",
            sessions,
            codes,
        )
    )
    sessions, codes = [], []
    for row in content_violations():
        _check_violation(row)
        what = row.example.description
        sessions.append(
            conversation(
                [
                    Send(CLIENT, row.example.data, f"{row.code}: {what}"),
                    Send(CLIENT, _search("morpheus").encode()),
                ],
                comment=f"bad content {row.code}: {what}",
            )
        )
        codes.append(row.code)
    out.append(
        Sample(
            "14-bad-content",
            "Well-framed text/json requests whose content cannot be read, "
            "then a valid request on the same stream.",
            "A warning on the bad request; the server answers with an error message and keeps the "
            "connection: the next request is answered normally.",
            sessions,
            codes,
        )
    )
    out.append(
        Sample(
            "15-retransmission",
            "A search whose request segment is retransmitted after 200 ms.",
            "`[TCP Retransmission]`: the retransmitted copy is not dissected a second time.",
            [conversation([morpheus], comment="a retransmitted request segment", retransmit=0)],
        )
    )
    ooo = _binary(bytes(range(256)) * 4).encode()
    out.append(
        Sample(
            "16-out-of-order",
            "A 1,155-byte request in three segments (MSS 536), the first sent after the second.",
            "`[TCP Out-Of-Order]`; with tcp.reassemble_out_of_order (Protocols > TCP) the request is "
            "reassembled and dissected once.",
            [conversation([ooo], comment="an out-of-order segment", mss=536, out_of_order=0)],
        )
    )
    out.append(
        Sample(
            "17-ipv6",
            "A search over IPv6.",
            "The same messages over IPv6 (2001:db8::1 -> 2001:db8::2).",
            [conversation([_search("ring").encode()], comment="a search over IPv6", ipv6=True)],
        )
    )
    out.append(
        Sample(
            "18-other-port",
            f"A session on port {OTHER_PORT}: no port rule applies, the heuristic dissector finds it.",
            "Dissected as lpjson with no `Decode As`; "
            "the heuristic is listed under Analyze > Enabled Protocols.",
            [
                conversation(
                    _cut(b"".join(pipelined), 3),
                    comment=f"a session on port {OTHER_PORT}",
                    server_port=OTHER_PORT,
                )
            ],
        )
    )
    return out


def readme(sample_list: Sequence[Sample]) -> str:
    """The pcaps/README.md text for ``sample_list``."""
    lines = [
        "# Sample captures",
        "",
        "Generated by `harness pcap samples --out pcaps` (do not edit by hand: a test checks that",
        "a fresh generation equals these files byte for byte). Every response comes from the",
        "reference server's connection logic, fed the client's sends one by one.",
        "",
        "Open them with the lpjson dissector loaded (`harness wireshark install`, or",
        "`wireshark -X lua_script:$(harness wireshark path) FILE`). Each packet carries a pcapng",
        "comment (`frame.comment`, or Statistics > Capture File Properties) saying what it shows.",
        "For the out-of-order sample enable Protocols > TCP > *Reassemble out-of-order segments*.",
        "",
        "| file | what it shows | what to look at |",
        "| --- | --- | --- |",
    ]
    for sample in sample_list:
        lines.append(f"| `{sample.filename}` | {sample.title} | {sample.look_for} |")
    lines.append("")
    return "\n".join(lines)


def write_samples(out_dir: str | Path) -> list[Path]:
    """Write every sample (and README.md) into ``out_dir``; return the capture paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    sample_list = samples()
    for sample in sample_list:
        path = out / sample.filename
        frames = write_sessions(path, sample.sessions)
        log.info("wrote %s (%d frames)", path, frames)
        paths.append(path)
    (out / "README.md").write_text(readme(sample_list), encoding="utf-8")
    return paths
