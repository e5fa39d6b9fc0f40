"""What a load run is given and what it gives back: the configuration, status lines, the result."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.frames import DEFAULT_MAX_CONTENT_LENGTH
from harness.load.histogram import LatencyHistogram
from harness.message import Message

__all__ = ["CSV_COLUMNS", "MODES", "LoadConfig", "LoadResult", "LoadStatus", "default_requests"]

#: The client patterns: long-lived pipelined connections, or the guide's one request per connection.
MODES = ("pipeline", "connect-per-request")


def default_requests() -> list[bytes]:
    """The guide's requests: the four searches of docs/PROTOCOL.md#a1 and one binary request."""
    queries = ("morpheus", "ring", "🐶", "needle")
    messages = [Message.from_json({"action": "search", "value": value}) for value in queries]
    messages.append(Message.from_bytes("binary😃".encode()))
    return [message.encode() for message in messages]


@dataclass(frozen=True)
class LoadConfig:
    """What to run: target, client pattern and sizes."""

    host: str
    port: int
    connections: int = 50
    depth: int = 10
    duration: float = 10.0
    warmup: float = 0.0
    mode: str = "pipeline"
    requests: Sequence[bytes] = field(default_factory=default_requests)
    timeout: float = 5.0  # no byte for this long while answers are due -> error, reconnect
    max_content_length: int = DEFAULT_MAX_CONTENT_LENGTH
    status_interval: float = 1.0
    #: Write the requests that replace a batch of answers in one write (True), or each in
    #: its own write, as a client that sends a request whenever an answer arrives (False).
    coalesce: bool = True
    #: A fixed arrival rate, requests/s across all connections (pipeline mode), latency counted
    #: from each request's intended send time (:mod:`harness.load.rate`); None: closed loop,
    #: every answer replaced at once by a new request.
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.rate is not None:
            if not self.rate > 0 or math.isinf(self.rate):
                raise ValueError(f"the rate must be a positive number of requests/s, not {self.rate}")
            if self.mode != "pipeline":
                raise ValueError("a fixed rate needs the pipeline mode")
        if self.connections < 1 or self.depth < 1:
            raise ValueError("connections and depth must be >= 1")
        # (written so that NaN fails too: a NaN timer would never end the run)
        if not (self.duration > 0 and self.warmup >= 0 and self.timeout > 0):
            raise ValueError("duration and timeout must be > 0, warmup >= 0")
        if not self.requests:
            raise ValueError("at least one request is needed")


@dataclass(frozen=True)
class LoadStatus:
    """A periodic snapshot, for a live status line."""

    elapsed: float  # seconds since the start (warm-up included)
    measuring: bool  # False during warm-up
    answers: int  # answers counted so far (measured window only)
    interval_rate: float  # answers (and error responses) per second over the last interval
    interval_p99_ms: float  # p99 latency over the last interval (nan if none)
    errors: int
    open_connections: int
    interval_p50_ms: float = math.nan
    interval_p999_ms: float = math.nan
    #: With a fixed rate: requests due but not sent yet (every connection was at its depth).
    waiting: int = 0

    def csv_row(self) -> list[str]:
        """This interval as a row of :data:`CSV_COLUMNS`."""
        return [
            f"{self.elapsed:.3f}",
            "measuring" if self.measuring else "warmup",
            f"{self.interval_rate:.1f}",
            _ms(self.interval_p50_ms),
            _ms(self.interval_p99_ms),
            _ms(self.interval_p999_ms),
            str(self.answers),
            str(self.errors),
            str(self.open_connections),
            str(self.waiting),
        ]


#: The columns of ``harness load --csv``: one row per status interval, then one ``total`` row
#: for the measured window (``elapsed_s`` is then its length, ``requests_per_s`` the answers/s).
CSV_COLUMNS = (
    "elapsed_s",
    "phase",
    "requests_per_s",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "answers",
    "errors",
    "open_connections",
    "waiting",
)


def _ms(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


@dataclass
class LoadResult:
    """What a run measured. Latencies in milliseconds."""

    host: str
    port: int
    mode: str
    connections: int
    depth: int
    duration: float  # measured window, seconds
    answers: int
    sent: int
    errors: dict[str, int]
    latency: LatencyHistogram = field(repr=False)
    #: The fixed arrival rate asked for (requests/s), or None for the closed loop.
    rate: float | None = None
    #: With a fixed rate: requests that fell due but were never sent (the server fell behind).
    waiting: int = 0
    #: Every status interval of the run, warm-up included.
    intervals: list[LoadStatus] = field(default_factory=list, repr=False)

    @property
    def requests_per_second(self) -> float:
        return self.answers / self.duration if self.duration > 0 else 0.0

    @property
    def errors_total(self) -> int:
        return sum(self.errors.values())

    def latency_ms(self) -> dict[str, float]:
        """p50/p90/p99/p99.9 (within 1.6%), max and mean latency in ms (nan when nothing was answered)."""
        hist = self.latency
        empty = not hist.count
        return {
            "p50": hist.percentile(50) / 1e6,
            "p90": hist.percentile(90) / 1e6,
            "p99": hist.percentile(99) / 1e6,
            "p99.9": hist.percentile(99.9) / 1e6,
            "max": float("nan") if empty else hist.max / 1e6,
            "mean": hist.mean / 1e6,
        }

    def to_json(self) -> dict[str, Any]:
        latency = {k: (None if math.isnan(v) else round(v, 4)) for k, v in self.latency_ms().items()}
        return {
            "target": f"{self.host}:{self.port}",
            "mode": self.mode,
            "connections": self.connections,
            "depth": self.depth,
            "rate": self.rate,
            "duration_s": round(self.duration, 3),
            "answers": self.answers,
            "sent": self.sent,
            "requests_per_s": round(self.requests_per_second, 1),
            "latency_ms": latency,
            "errors": dict(sorted(self.errors.items())),
            "errors_total": self.errors_total,
            "waiting": self.waiting,
        }

    def write_csv(self, stream: Any) -> None:
        """The status intervals and a ``total`` row, as :data:`CSV_COLUMNS` (header first)."""
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for status in self.intervals:
            writer.writerow(status.csv_row())
        lat = self.latency_ms()
        total = LoadStatus(
            elapsed=self.duration,
            measuring=True,
            answers=self.answers,
            interval_rate=self.requests_per_second,
            interval_p99_ms=lat["p99"],
            errors=self.errors_total,
            open_connections=0,
            interval_p50_ms=lat["p50"],
            interval_p999_ms=lat["p99.9"],
            waiting=self.waiting,
        ).csv_row()
        total[1] = "total"
        total[8] = ""
        writer.writerow(total)

    def summary(self) -> str:
        lat = self.latency_ms()
        errors = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items())) or "none"
        rate = "" if self.rate is None else f" rate={self.rate:g}/s"
        waiting = (
            f"\n{self.waiting} request(s) due but never sent: the server fell behind" if self.waiting else ""
        )
        since = "" if self.rate is None else " (from the intended send time)"
        return (
            f"{self.mode} {self.host}:{self.port}  c={self.connections} d={self.depth}{rate}  "
            f"{self.duration:.1f}s: {self.answers} answers, {self.requests_per_second:,.0f} req/s\n"
            f"latency{since} p50 {lat['p50']:.3f} ms  p90 {lat['p90']:.3f} ms  p99 {lat['p99']:.3f} ms  "
            f"p99.9 {lat['p99.9']:.3f} ms  max {lat['max']:.3f} ms\nerrors: {errors}{waiting}"
        )
