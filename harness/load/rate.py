"""A fixed arrival rate (``--rate``): requests are due at fixed times, whatever the server does.

As in wrk2, the ``k``-th request of the run is *due* at ``start + k / rate`` and its
latency is measured from that intended time, not from the moment a connection was
free to send it. A server that stalls for a second therefore shows a second of
latency on every request that fell due meanwhile (the requests it delayed), instead
of one slow request and a pause in sending (coordinated omission).

Due requests wait in a backlog until a connection has room (fewer than ``depth``
in flight); every tick and every answer hands the backlog out, starting from a
different connection each time so that the load spreads over all of them.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.load.state import RunState

__all__ = ["RateScheduler"]

_now = time.perf_counter_ns


class RateScheduler:
    """Release requests at ``rate`` per second (all connections together) from ``start``."""

    def __init__(self, run: RunState, rate: float, start: int) -> None:
        self.run = run
        self.rate = rate
        self.start = start
        self.issued = 0  # requests that fell due so far
        self.backlog: deque[int] = deque()  # intended send times (ns) of due requests not yet sent
        self.turn = 0
        # A tick often enough that a request rarely waits for one (its latency counts from its
        # intended time anyway), rarely enough that idle ticks cost nothing.
        self.period = min(0.01, max(0.0005, 1.0 / rate))
        self._handle: asyncio.TimerHandle | None = None

    def begin(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        if not self.run.sending:
            self._handle = None
            return
        self.release(_now())
        self.dispatch()
        self._handle = asyncio.get_running_loop().call_later(self.period, self._tick)

    def release(self, now: int) -> None:
        """Move every request due by ``now`` into the backlog."""
        due = int((now - self.start) * self.rate / 1e9) + 1  # the first request is due at start
        step = 1e9 / self.rate
        backlog, start = self.backlog, self.start
        for k in range(self.issued, due):
            backlog.append(start + int(k * step))
        if due > self.issued:
            self.issued = due

    def dispatch(self) -> None:
        """Hand the backlog out to the connections that have room, in turn."""
        backlog = self.backlog
        if not backlog or not self.run.sending:
            return
        clients = list(self.run.clients)
        if not clients:
            return
        depth = self.run.config.depth
        n = len(clients)
        first = self.turn % n
        self.turn += 1
        for j in range(n):
            client = clients[(first + j) % n]
            room = depth - client.in_flight
            if room <= 0 or client.failed or client.transport is None:
                continue
            k = min(room, len(backlog))
            client.send_due([backlog.popleft() for _ in range(k)])
            if not backlog:
                return

    @property
    def waiting(self) -> int:
        """Requests due but not yet sent (no connection had room)."""
        return len(self.backlog)
