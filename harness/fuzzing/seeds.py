"""The seed corpus, built from the codec, the table of violations and the strategies.

:func:`seed_corpus` gives every seed as a fuzz input (see
:class:`~harness.fuzzing.input.FuzzInput`) by file name; ``fuzz/make_seeds.py``
writes it to ``fuzz/seeds/``. Hypothesis is imported only to draw the seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from harness.fuzzing.input import FLAG_ALTERNATE, FLAG_CYCLE, FLAG_SMALL_LIMITS, FuzzInput
from harness.message import TEXT_ENCODINGS, Message
from harness.vectors import GUIDE_EXCHANGES

__all__ = ["DRAWN_SEED_PREFIXES", "WIRE_VECTORS", "seed_corpus"]

#: The wire vectors of docs/PROTOCOL.md#wire-vectors (the guide's own run), by seed name.
WIRE_VECTORS: dict[str, bytes] = {
    f"vector-{side}-{name}": exchange[index]
    for name, exchange in GUIDE_EXCHANGES.items()
    for index, side in enumerate(("request", "response"))
}


def _valid_seed_messages() -> Iterator[tuple[str, bytes]]:
    for query in ("morpheus", "ring", "\U0001f436", "needle", ""):
        yield (
            f"search-{query.encode().hex() if not query.isascii() else query or 'empty'}",
            (Message.from_json({"action": "search", "value": query}, byteorder="big").encode()),
        )
    yield "action-fetch", Message.from_json({"action": "fetch", "value": "x"}).encode()
    yield "json-not-object", Message.from_json([1, "two", None, True, 2.5, {"k": []}]).encode()
    for encoding in sorted(TEXT_ENCODINGS):
        value = {"action": "search", "value": "caf\u00e9" if encoding != "ascii" else "cafe"}
        yield f"encoding-{encoding}", Message.from_json(value, encoding=encoding).encode()
    yield "binary-empty", Message.from_bytes(b"").encode()
    yield (
        "binary-octets",
        Message.from_bytes(bytes(range(256)), content_type="application/octet-stream").encode(),
    )
    yield (
        "extension-headers",
        Message.from_json(
            {"action": "search", "value": "ring"},
            extra_headers={"x-id": 7, "x-trace": ["a", {"b": None}], "x-ratio": 0.5, "x-flag": False},
        ).encode(),
    )
    # More distinct headers than a decoder remembers per stream (its header memo holds 32).
    yield (
        "many-distinct-headers",
        b"".join(Message.from_bytes(b"", content_type=f"t{i}", encoding="b").encode() for i in range(34)),
    )
    yield (
        "compact-header",
        (
            b'\x00\x5a{"content-length":2,"byteorder":"big","content-encoding":"utf-8","content-type":"text/json"}{}'
        ),
    )


def _hypothesis_examples(strategy: Any, count: int, seed: int) -> list[Any]:
    """``count`` examples of ``strategy``, the same ones on every run (Hypothesis is derandomized)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed

    drawn: list[Any] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        if len(drawn) < count:
            drawn.append(value)

    collect()
    return drawn


#: Seeds drawn from Hypothesis strategies: their bytes change with the Hypothesis version (and
#: with string constants Hypothesis picks up from the source); every other seed is fixed.
DRAWN_SEED_PREFIXES = ("violation-", "pair-then-", "bad-content-", "message-", "stream-")


def seed_corpus() -> dict[str, bytes]:
    """The seed corpus: fuzz inputs (see :class:`FuzzInput`) by file name.

    The wire vectors, every kind of valid message, pipelined pairs, each violation
    class of docs/PROTOCOL.md (the rows of :data:`harness.violations.VIOLATIONS`, drawn with
    their generators through :func:`harness.strategies.malformed_messages` and
    :func:`~harness.strategies.bad_content_messages`), with a few chunkings.
    Deterministic for a given Hypothesis version.
    """
    from harness import strategies
    from harness.violations import stream_violations

    streams: dict[str, bytes] = dict(WIRE_VECTORS)
    streams.update(_valid_seed_messages())
    singles = list(streams.items())
    # pipelined pairs: request then request, and valid then broken
    request = WIRE_VECTORS["vector-request-morpheus"]
    for name, data in singles[:: max(1, len(singles) // 8)]:
        streams[f"pair-{name}"] = request + data
    for kind in (row.code for row in stream_violations()):
        for i, bad in enumerate(_hypothesis_examples(strategies.malformed_messages(kind), 4, seed=len(kind))):
            streams[f"violation-{kind}-{i}"] = bad.data
            if i == 0:
                streams[f"pair-then-{kind}"] = request + bad.data
    for i, (message, _error) in enumerate(_hypothesis_examples(strategies.bad_content_messages(), 6, seed=7)):
        streams[f"bad-content-{i}"] = message.encode()
    for i, message in enumerate(_hypothesis_examples(strategies.messages(max_content_size=512), 12, seed=11)):
        try:
            streams[f"message-{i}"] = message.encode()
        except ValueError:  # pragma: no cover - headers drawn here are small
            continue
    from hypothesis import strategies as st

    pipelines = st.lists(strategies.wire_messages(), min_size=2, max_size=3).map(
        lambda pairs: b"".join(raw for _, raw in pairs)
    )
    for i, stream in enumerate(_hypothesis_examples(pipelines.filter(lambda b: len(b) <= 4096), 6, seed=13)):
        streams[f"stream-{i}"] = stream

    corpus: dict[str, bytes] = {}
    for name, data in streams.items():
        corpus[name] = FuzzInput(data).encode()
    # A few chunkings of the wire vectors: one byte at a time, across the prefix, the header and the content.
    request_bytes = WIRE_VECTORS["vector-request-morpheus"]
    corpus["chunked-bytewise"] = FuzzInput(request_bytes + request_bytes, b"\x01", FLAG_CYCLE).encode()
    corpus["chunked-prefix-header-content"] = FuzzInput(request_bytes, bytes([1, 1, 50, 55, 0, 10])).encode()
    corpus["chunked-stepwise"] = FuzzInput(
        request_bytes * 3, bytes([7, 0, 101]), FLAG_CYCLE | FLAG_ALTERNATE
    ).encode()
    corpus["small-limits-binary"] = FuzzInput(
        WIRE_VECTORS["vector-response-binary"] * 2, b"", FLAG_SMALL_LIMITS
    ).encode()
    corpus["small-limits-pipelined"] = FuzzInput(
        request_bytes * 6, b"\x40", FLAG_SMALL_LIMITS | FLAG_CYCLE
    ).encode()
    corpus["open-connection-partial"] = FuzzInput(
        request_bytes + request_bytes[:60], b"\x05", FLAG_ALTERNATE
    ).encode()
    return corpus
