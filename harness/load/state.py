"""What every connection of one load run shares: counters, the request ring, the answers learnt."""

from __future__ import annotations

import logging
from collections import Counter
from typing import TYPE_CHECKING

from harness.load.answers import Verdicts
from harness.load.config import LoadConfig
from harness.load.histogram import LatencyHistogram

if TYPE_CHECKING:
    from harness.load.pipeline import PipelineClient
    from harness.load.rate import RateScheduler

__all__ = ["RunState"]

log = logging.getLogger(__name__)


class RunState:
    """State shared by every connection of one run.

    The requests are sent in turn from a *ring*: ``requests[i:i+k]`` for any
    ``i < n`` and ``k <= depth`` is one slice of :attr:`ring`. The answers are
    learnt the same way: the first good answer to request ``i`` (judged through
    the frame reader) becomes ``expected[i]``; once every request has one, the
    answers to requests ``i..j-1`` are one slice of :attr:`expected_ring`, and a
    connection checks a whole batch of answers with one byte comparison. A
    server whose answers to the same request differ turns that off
    (:attr:`answers_vary`).
    """

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.verdicts = Verdicts()
        self.measuring = False
        self.sending = True
        self.answers = 0  # good answers in the measured window
        self.seen = 0  # every answer or error response, warm-up included (for the status line)
        self.sent = 0
        self.errors: Counter[str] = Counter()
        self.latency = LatencyHistogram()  # every answer's latency, warm-up included
        self.clients: set[PipelineClient] = set()
        #: With a fixed arrival rate (``config.rate``): what releases the requests.
        self.scheduler: RateScheduler | None = None
        reqs = list(config.requests)
        n = len(reqs)
        extended = [reqs[j % n] for j in range(n + max(config.depth, 1))]
        self.ring = b"".join(extended)
        self.offsets = _offsets(extended)
        self.n_requests = n
        self.expected: list[bytes | None] = [None] * n
        self.expected_ring: bytes | None = None
        self.expected_offsets: list[int] = []
        self.answers_vary = False

    def error(self, kind: str) -> None:
        if self.measuring:
            self.errors[kind] += 1

    def learn(self, index: int, answer: bytes) -> None:
        """``answer`` (the bytes of one whole frame) was a good answer to request ``index``."""
        known = self.expected[index]
        if known is None:
            self.expected[index] = answer
            if all(e is not None for e in self.expected):
                n = self.n_requests
                ring = [self.expected[j % n] or b"" for j in range(n + max(self.config.depth, 1))]
                self.expected_ring = b"".join(ring)
                self.expected_offsets = _offsets(ring)
        elif known != answer and not self.answers_vary:
            log.debug("answers to request %d differ: checking every answer on its own", index)
            self.answers_vary = True
            self.expected_ring = None


def _offsets(pieces: list[bytes]) -> list[int]:
    """Where each of ``pieces`` starts in their concatenation, and where the last one ends."""
    offsets = [0]
    for piece in pieces:
        offsets.append(offsets[-1] + len(piece))
    return offsets
