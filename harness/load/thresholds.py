"""Pass/fail limits on a load run's result (``harness load --max-p99 ...``), for CI."""

from __future__ import annotations

import math
from dataclasses import dataclass

from harness.load.config import LoadResult

__all__ = ["Thresholds"]


@dataclass(frozen=True)
class Thresholds:
    """Limits a run must meet; ``None`` leaves one unchecked. Latencies in ms."""

    max_p99_ms: float | None = None
    max_p999_ms: float | None = None
    max_errors: int | None = None
    min_rps: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_p99_ms", "max_p999_ms", "min_rps"):
            value = getattr(self, name)
            if value is not None and not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, not {value}")
        if self.max_errors is not None and self.max_errors < 0:
            raise ValueError(f"max_errors must be >= 0, not {self.max_errors}")

    def missed(self, result: LoadResult) -> list[str]:
        """One line per limit ``result`` misses (empty: every limit met).

        A latency limit with nothing answered is missed: there is no latency to meet it.
        """
        lat = result.latency_ms()
        misses: list[str] = []
        for key, limit, flag in (
            ("p99", self.max_p99_ms, "--max-p99"),
            ("p99.9", self.max_p999_ms, "--max-p999"),
        ):
            if limit is None:
                continue
            value = lat[key]
            if math.isnan(value):
                misses.append(f"{flag} {limit:g} ms: no answer, so no {key} latency")
            elif value > limit:
                misses.append(f"{flag} {limit:g} ms: {key} was {value:.3f} ms")
        if self.max_errors is not None and result.errors_total > self.max_errors:
            misses.append(f"--max-errors {self.max_errors}: {result.errors_total} error(s)")
        if self.min_rps is not None and result.requests_per_second < self.min_rps:
            misses.append(f"--min-rps {self.min_rps:g}: {result.requests_per_second:,.1f} req/s")
        return misses
