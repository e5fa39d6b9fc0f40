"""``harness pcap``: write the sample captures, or turn any byte stream into a capture."""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

from harness._extras import require

# harness.capture.writer and harness.capture.samples (scapy, the pcap extra: ~140 ms and tens
# of MB) are imported by the commands that use them, so that `harness` itself starts without them.

#: harness.capture.writer.DEFAULT_SERVER_PORT (tests/test_cli_startup.py checks that they agree).
DEFAULT_SERVER_PORT = 65432

FROM_BYTES_DESCRIPTION = """\
Write FILE (a fuzzer crash, a Hypothesis failure, any byte stream; - for stdin) as the
client side of one TCP session, so that it can be opened in Wireshark with the lpjson
dissector. By default the whole stream goes out in one send() (cut into MSS-sized
segments on the wire); --chunk N sends N bytes at a time, --cuts A,B,... cuts the stream
at those offsets. With --respond the reference server's answers are included, send by send.

--fuzz-input reads FILE as a fuzzer input (fuzz/fuzz_decoder.py, fuzz/fuzz_server.py,
their crash-* files): the chunking header and the cut deltas come first, then the
stream; the client sends exactly the input's chunks (empty chunks send nothing).
An input that asks for no end of stream (flag 0x40) leaves the client's side open.
"""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pcap",
        help="write lpjson captures (pcapng) for Wireshark",
        description="Write lpjson captures (pcapng) for Wireshark.",
    )
    sub = parser.add_subparsers(dest="pcap_command", metavar="SUBCOMMAND", required=True)

    sample_parser = sub.add_parser(
        "samples",
        help="write the sample captures and their README",
        description="Write the sample captures (the set committed in pcaps/) and a README saying what "
        "each one shows.",
    )
    sample_parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    sample_parser.set_defaults(func=run_samples)

    bytes_parser = sub.add_parser(
        "from-bytes",
        help="turn a byte stream into the client side of a capture",
        description=FROM_BYTES_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    bytes_parser.add_argument("file", metavar="FILE", help="the client's byte stream (- for stdin)")
    bytes_parser.add_argument(
        "--out", required=True, type=Path, metavar="OUT.pcapng", help="capture to write"
    )
    cutting = bytes_parser.add_mutually_exclusive_group()
    cutting.add_argument("--chunk", type=int, metavar="N", help="send N bytes at a time")
    cutting.add_argument("--cuts", metavar="A,B,...", help="cut the stream at these byte offsets")
    cutting.add_argument(
        "--fuzz-input",
        action="store_true",
        help="FILE is a fuzzer input: send its stream in its chunks (see harness.fuzzing.FuzzInput)",
    )
    bytes_parser.add_argument(
        "--respond", action="store_true", help="add the reference server's answers after each send"
    )
    bytes_parser.add_argument(
        "--port", type=int, default=DEFAULT_SERVER_PORT, help=f"server port (default {DEFAULT_SERVER_PORT})"
    )
    bytes_parser.add_argument("--ipv6", action="store_true", help="use IPv6 addresses")
    bytes_parser.add_argument("--mss", type=int, default=1460, help="largest segment (default 1460)")
    bytes_parser.add_argument("--comment", default="", help="pcapng comment on the first packet")
    bytes_parser.set_defaults(func=run_from_bytes)


def run_samples(args: argparse.Namespace) -> int:
    require("the pcap command", "scapy")
    from harness.capture.samples import samples, write_samples

    paths = write_samples(args.out)
    for path, sample in zip(paths, samples(), strict=True):
        print(f"{path}: {sample.title}")
    print(f"{len(paths)} captures and {args.out / 'README.md'} written")
    return 0


def split(data: bytes, chunk: int | None, cuts: str | None) -> list[bytes]:
    """``data`` cut into sends: every ``chunk`` bytes, at the offsets ``cuts``, or whole."""
    if chunk is not None:
        if chunk < 1:
            raise ValueError("--chunk must be at least 1")
        return [data[i : i + chunk] for i in range(0, len(data), chunk)] or [b""]
    if cuts:
        try:
            offsets = sorted(int(c) for c in cuts.split(",") if c.strip())
        except ValueError:
            raise ValueError(f"--cuts must be comma-separated integers, not {cuts!r}") from None
        if offsets and (offsets[0] < 0 or offsets[-1] > len(data)):
            raise ValueError(f"--cuts must lie between 0 and {len(data)} (the stream's length)")
        bounds = [0, *offsets, len(data)]
        return [data[a:b] for a, b in itertools.pairwise(bounds)]
    return [data]


def fuzz_input_chunks(data: bytes) -> tuple[list[bytes], bool, str]:
    """A fuzzer input's client sends, whether the client ends its stream, and what the input says.

    The chunks are the input's stream cut at the input's cut points
    (:class:`harness.fuzzing.FuzzInput`), the very chunks the fuzzers feed.
    """
    from harness.fuzzing.input import FLAG_ALTERNATE, FLAG_CYCLE, FLAG_SMALL_LIMITS, FuzzInput
    from harness.fuzzing.input import split as split_input

    fuzz = FuzzInput.decode(data)
    chunks = split_input(fuzz.payload, fuzz.cuts)
    flags = [
        name
        for bit, name in (
            (FLAG_SMALL_LIMITS, "small limits (content-length <= 100)"),
            (FLAG_ALTERNATE, "no end of stream (server) / receive_data()+next_message() (decoder)"),
            (FLAG_CYCLE, "cut deltas repeated"),
        )
        if fuzz.flags & bit
    ]
    note = (
        f"fuzz input: {len(fuzz.deltas)} cut delta(s), {len(fuzz.payload)}-byte stream in "
        f"{len(chunks)} chunk(s)" + (f"; flags: {', '.join(flags)}" if flags else "")
    )
    return chunks, not fuzz.flags & FLAG_ALTERNATE, note


def run_from_bytes(args: argparse.Namespace) -> int:
    require("the pcap command", "scapy")
    from harness.capture.samples import conversation
    from harness.capture.writer import CLIENT, Send, Session, write_sessions

    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"harness pcap from-bytes: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        closes = True
        note = ""
        if args.fuzz_input:
            chunks, closes, note = fuzz_input_chunks(data)
            # Empty chunks carry no segment; a stream with none at all still gets its session.
            chunks = [c for c in chunks if c] or [b""]
        else:
            chunks = split(data, args.chunk, args.cuts)
        comment = args.comment or f"the bytes of {args.file}" + (f" ({note})" if note else "")
        options = {"comment": comment, "server_port": args.port, "ipv6": args.ipv6, "mss": args.mss}
        if args.respond:
            session = conversation(chunks, client_closes=closes, **options)
        elif closes:
            session = Session([Send(CLIENT, c) for c in chunks], **options)
        else:
            session = Session([Send(CLIENT, c) for c in chunks], close=None, **options)
    except ValueError as exc:
        print(f"harness pcap from-bytes: {exc}", file=sys.stderr)
        return 2
    try:
        frames = write_sessions(args.out, [session])
    except OSError as exc:
        print(f"harness pcap from-bytes: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
        return 1
    sends = "1 send" if len(chunks) == 1 else f"{len(chunks)} sends"
    size = sum(len(c) for c in chunks)
    print(f"{args.out}: {size} bytes in {sends}, {frames} frames" + (f" ({note})" if note else ""))
    return 0
