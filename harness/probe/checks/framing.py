"""Checks of framing: the application's answers, requests split anywhere (inside the prefix,
the header, the content, one byte at a time, at random), and pipelined requests."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator

from harness.errors import ContentError
from harness.message import Message
from harness.probe.checks.answers import _describe_answer, _short, binary, exchange, search
from harness.probe.checks.context import _BYTEORDER, _SPLIT_PAUSE, CheckContext

# -- answers -------------------------------------------------------------------------


def _answer_check(request: Message) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        detail = exchange(ctx, [request])
        want = ctx.outcomes(request)[0]
        if isinstance(want, ContentError):
            return f"answered with the error message {want.code!r}"
        if detail.startswith("1 answer"):
            return f"answered {_describe_answer(want)}"
        return detail

    return run


# -- splitting -----------------------------------------------------------------------


def _header_end(raw: bytes) -> int:
    return 2 + int.from_bytes(raw[:2], "big")


def _check_one_byte(ctx: CheckContext) -> str:
    request = search("morpheus")
    raw = request.encode()
    exchange(ctx, [request], [raw[i : i + 1] for i in range(len(raw))], pause=0.0005)
    return f"{len(raw)} sends of 1 byte answered"


def _split_at(cut: Callable[[bytes], int], where: str) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        request = search("ring")
        raw = request.encode()
        at = cut(raw)
        exchange(ctx, [request], [raw[:at], raw[at:]], pause=_SPLIT_PAUSE)
        return f"split at byte {at} of {len(raw)} ({where}) answered"

    return run


def _split_requests() -> list[Message]:
    return [
        search("morpheus"),
        search("ring"),
        search("\U0001f436"),
        search("needle"),
        Message.from_json({"action": "fetch", "value": "ring"}, byteorder=_BYTEORDER),
        binary("binary\U0001f603".encode()),
        binary(bytes(range(256)) * 12),
    ]


def random_splittings(seed: int, count: int = 20) -> Iterator[tuple[Message, list[bytes]]]:
    """``count`` requests cut into chunks at positions drawn from ``random.Random(seed)``.

    The modes follow :func:`harness.strategies.chunkings`: random cut points,
    fixed-size pieces, and a cut right inside the 2-byte prefix or the header.
    """
    rng = random.Random(seed)
    requests = _split_requests()
    for _ in range(count):
        request = rng.choice(requests)
        raw = request.encode()
        n = len(raw)
        mode = rng.choice(["cuts", "cuts", "fixed", "prefix-header"])
        if mode == "fixed":
            size = rng.randint(1, max(1, n // 4))
            cuts = list(range(size, n, size))
        elif mode == "prefix-header":
            cuts = [1, rng.randint(2, _header_end(raw) - 1)]
        else:
            cuts = sorted(rng.sample(range(1, n), rng.randint(1, min(12, n - 1))))
        bounds = [0, *cuts, n]
        yield request, [raw[a:b] for a, b in itertools.pairwise(bounds)]


def _check_random_splittings(ctx: CheckContext) -> str:
    count = 0
    for index, (request, chunks) in enumerate(random_splittings(ctx.seed)):
        cuts = []
        at = 0
        for chunk in chunks[:-1]:
            at += len(chunk)
            cuts.append(at)
        label = f"splitting #{index + 1} (seed {ctx.seed}, cuts {_short(cuts)})"
        exchange(ctx, [request], chunks, pause=0.001, label=label)
        count += 1
    return f"{count} seeded splittings answered (seed {ctx.seed})"


# -- pipelining ----------------------------------------------------------------------


def _pipeline(count: int) -> Callable[[CheckContext], str]:
    def run(ctx: CheckContext) -> str:
        pool = _split_requests()
        requests = [pool[i % len(pool)] if i % 3 else search(f"needle-{i}") for i in range(count)]
        detail = exchange(ctx, requests, read_bound=2.0 + count * 0.02)
        if ctx.notes:
            return detail
        return f"{count} requests in one send answered in order"

    return run
