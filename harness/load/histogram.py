"""Latencies in bounded memory: a log-linear histogram (HdrHistogram's idea)."""

from __future__ import annotations

import math

__all__ = ["LatencyHistogram"]

_SUB_BITS = 6  # 64 sub-buckets per power of two: a recorded value is off by at most 1/64
_EXACT = 1 << (_SUB_BITS + 1)  # values below this are kept exactly


class LatencyHistogram:
    """Latencies in nanoseconds, log-linear buckets (HdrHistogram's idea), bounded memory.

    Values below 128 ns are exact; above, each power of two is split into 64 buckets,
    so a percentile is within 1.6% of the true value whatever the run length. ``max``
    and ``mean`` are exact.
    """

    __slots__ = ("buckets", "count", "max", "total")

    def __init__(self) -> None:
        self.buckets: list[int] = [0] * ((64 - _SUB_BITS + 1) << _SUB_BITS)  # any int64 value
        self.count = 0
        self.total = 0
        self.max = 0

    @staticmethod
    def bucket(value: int) -> int:
        shift = value.bit_length() - _SUB_BITS - 1
        if shift <= 0:
            return value
        return (shift << _SUB_BITS) + (value >> shift)

    @staticmethod
    def _lowest(index: int) -> int:
        """The smallest value that falls in bucket ``index``."""
        shift = (index >> _SUB_BITS) - 1
        if shift <= 0:
            return index
        return (index - (shift << _SUB_BITS)) << shift

    def add(self, value: int, n: int = 1) -> None:
        """Record ``value`` (ns, >= 0) ``n`` times."""
        self.buckets[self.bucket(value)] += n
        self.count += n
        self.total += value * n
        if value > self.max:
            self.max = value

    def percentile(self, pct: float) -> float:
        """The nearest-rank ``pct`` percentile (the middle of its bucket, never above max); nan if empty."""
        if not self.count:
            return float("nan")
        # (rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in floating point, not 999)
        rank = max(1, math.ceil(round(pct / 100 * self.count, 6)))
        seen = 0
        for index, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                low = self._lowest(index)
                high = self._lowest(index + 1) - 1
                return float(min((low + high) / 2, self.max))
        return float(self.max)  # pragma: no cover - the counts always reach rank

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def copy(self) -> LatencyHistogram:
        other = LatencyHistogram()
        other.buckets = list(self.buckets)
        other.count, other.total, other.max = self.count, self.total, self.max
        return other

    def since(self, earlier: LatencyHistogram) -> LatencyHistogram:
        """What was recorded after ``earlier`` (a :meth:`copy` of this histogram) was taken.

        ``max`` is the largest bucket's upper value then (exact when nothing larger came before).
        """
        other = LatencyHistogram()
        other.buckets = [a - b for a, b in zip(self.buckets, earlier.buckets, strict=True)]
        other.count = self.count - earlier.count
        other.total = self.total - earlier.total
        top = max((i for i, n in enumerate(other.buckets) if n), default=None)
        if top is not None:
            other.max = self.max if self.max < self._lowest(top + 1) else self._lowest(top + 1) - 1
        return other
