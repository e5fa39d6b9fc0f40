"""Sentinels: run-long checks beside the generated programs, for the rules a case of
milliseconds cannot judge (docs/PROTOCOL.md#l2, docs/PROTOCOL.md#l3).

- **Idle** (L2, any target): two connections opened when the run starts, one that sends
  nothing and one that sends half a request, then nothing more. Once the run has lasted the
  idle timeout the server is held to (``idle_timeout``, default the reference server's
  30 s) plus a margin, both must have been closed by the server (an ``idle-timeout`` error
  message may come first). A run too short to get there says so: L2 not judged.
- **Memory** (L3, a supervised server only: it needs the RSS bound): once, 30 s into the run
  (``MEMORY_AT``; ``BURST_RESERVE`` seconds before the time budget ends when that is sooner,
  not at all in a run under 30 s), two programs the generator never
  draws run as cases of their own: a client that never reads floods the server with requests
  (:class:`~harness.livefuzz.program.Flood`: a server without backpressure holds all of
  them), and 96 binary requests of 1000 KiB, each on a fresh connection and answered
  (:class:`~harness.livefuzz.program.LargeRequests`: a server that keeps what it served
  grows by all of it). The runner's RSS bound judges both, as for every case.

Each failure is a short program (the steps above) that ``harness replay`` re-runs; the
idle one is a whole-run property (its one connection waited the whole bound) and is not
shrunk. Sentinels do not change generation: the same seed gives the same programs with
them or without.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import time
from dataclasses import dataclass, field

from harness.errors import ProtocolError
from harness.frames import FrameReader
from harness.livefuzz.oracle import MAX_ANSWER_CONTENT
from harness.livefuzz.program import AwaitClose, Flood, LargeRequests, Open, Send, Step
from harness.livefuzz.runner import CaseResult, Runner
from harness.message import Message
from harness.probe.checks import error_code
from harness.probe.wire import Chunk, Transcript

__all__ = [
    "BURST_RESERVE",
    "DEFAULT_IDLE_TIMEOUT",
    "MEMORY_AT",
    "Sentinels",
    "idle_margin",
    "memory_programs",
]

log = logging.getLogger(__name__)

#: The idle timeout a server is held to by default: the reference server's (docs/PROTOCOL.md#l2).
DEFAULT_IDLE_TIMEOUT = 30.0
#: The memory sentinels start this many seconds into the run, or ``BURST_RESERVE`` seconds before
#: its time budget ends when that is sooner (they take a few seconds).
MEMORY_AT = 30.0
BURST_RESERVE = 15.0
#: The first bytes of a search request: a prefix and the start of its header.
_HALF_REQUEST = Message.from_json({"action": "search", "value": "morpheus"}).encode()[:12]


def idle_margin(timeout: float) -> float:
    """Seconds past the idle timeout before an idle connection still open fails."""
    return max(3.0, timeout)


def memory_programs() -> list[list[Step]]:
    """The memory sentinels' programs, as the probe's never-reads and many-large-requests checks
    size them: 96 MiB or 8 s of requests never read through a 16 KiB receive buffer; 96
    requests of 1000 KiB."""
    return [
        [Flood(0, 96 << 20, 8.0, 16 << 10)],
        [LargeRequests(96, 1000 << 10)],
    ]


@dataclass
class _Idle:
    """One idle connection of the idle sentinel."""

    label: str
    program: list[Step]
    sock: socket.socket
    transcript: Transcript
    opened: float
    reader: FrameReader = field(default_factory=lambda: FrameReader(MAX_ANSWER_CONTENT))
    got: list[Message] = field(default_factory=list)
    ended: float | None = None  # when the server closed it
    broken: str | None = None

    def poll(self) -> None:
        while self.ended is None:
            readable, _, _ = select.select([self.sock], [], [], 0)
            if not readable:
                return
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                self.transcript.reset = True
                self.ended = time.monotonic()
                return
            if not data:
                self.transcript.server_closed = True
                self.ended = time.monotonic()
                return
            self.transcript.chunks.append(Chunk(False, data, time.monotonic() - self.opened))
            if self.broken is None:
                try:
                    self.got.extend(Message.from_frame(f) for f in self.reader.feed(data))
                except ProtocolError as error:
                    self.broken = str(error)


class Sentinels:
    """The sentinels of one run against ``runner``'s server (see the module's docstring).

    ``idle_timeout``: None for no idle sentinel. ``memory``: run the memory sentinels (only
    meaningful with a supervised server). ``max_time``: the run's time budget, which places
    the memory sentinels and says whether the idle one can be judged."""

    def __init__(
        self, runner: Runner, *, idle_timeout: float | None, memory: bool, max_time: float | None
    ) -> None:
        self.runner = runner
        self.idle_timeout = idle_timeout
        self.idle_bound = None if idle_timeout is None else idle_timeout + idle_margin(runner.timeout)
        self.memory = memory and runner.server is not None
        self.max_time = max_time
        self.memory_at = (
            min(MEMORY_AT, max_time - BURST_RESERVE)
            if self.memory and max_time is not None and max_time >= 2 * BURST_RESERVE
            else None
        )
        self._idle: list[_Idle] = []
        self._started = 0.0
        self._idle_verdict: str | None = None
        self._memory_verdict: str | None = None

    # -- life ------------------------------------------------------------------------

    def start(self) -> None:
        self._started = time.monotonic()
        if self.idle_bound is None:
            return
        assert self.idle_timeout is not None
        for label, first in (("connection 0", b""), ("connection 0", _HALF_REQUEST)):
            sock = socket.create_connection((self.runner.host, self.runner.port), timeout=self.runner.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            local, peer = sock.getsockname(), sock.getpeername()
            opened = time.monotonic()
            transcript = Transcript(label, (local[0], local[1]), (peer[0], peer[1]))
            if first:
                sock.sendall(first)
                transcript.chunks.append(Chunk(True, first, 0.0))
            sock.setblocking(False)
            program: list[Step] = [
                Send(0, first, label="half a request: the prefix and the header's first bytes")
                if first
                else Open(0),
                AwaitClose(0, self.idle_bound),
            ]
            self._idle.append(_Idle(label, program, sock, transcript, opened))

    def close(self) -> None:
        for idle in self._idle:
            with contextlib.suppress(OSError):
                idle.sock.close()

    # -- between cases ------------------------------------------------------------------

    def tick(self) -> tuple[list[Step], CaseResult] | None:
        """Called between cases: judge what is due; a failure as (program, result)."""
        now = time.monotonic()
        found = self._tick_idle(now)
        if found is not None:
            return found
        if (
            self.memory_at is not None
            and self._memory_verdict is None
            and now - self._started >= self.memory_at
        ):
            return self._run_memory()
        return None

    def _tick_idle(self, now: float) -> tuple[list[Step], CaseResult] | None:
        if self.idle_bound is None or self._idle_verdict is not None:
            return None
        for idle in self._idle:
            idle.poll()
        for idle in self._idle:
            why = self._idle_failure(idle, now)
            if why is not None:
                self._idle_verdict = "failed"
                result = CaseResult(failure=why, step=1, transcripts=[idle.transcript], connections=1)
                result.seconds = now - idle.opened
                return idle.program, result
        if all(idle.ended is not None for idle in self._idle):
            after = ", ".join(f"{idle.ended - idle.opened:.1f} s" for idle in self._idle if idle.ended)
            self._idle_verdict = f"L2 judged: both idle connections were closed by the server (after {after})"
            self.close()
        return None

    def _idle_failure(self, idle: _Idle, now: float) -> str | None:
        assert self.idle_bound is not None
        what = "idle from the start" if isinstance(idle.program[0], Open) else "idle inside a message"
        if idle.broken is not None:
            return f"{idle.label} ({what}): the server's bytes break the protocol: {idle.broken}"
        for message in idle.got:
            if error_code(message) != "idle-timeout":
                code = error_code(message)
                shown = f"the error message {code!r}" if code else f"a {message.content_type} answer"
                owed = "nothing" if isinstance(idle.program[0], Open) else "nothing but half a request"
                return (
                    f"{idle.label} ({what}): the server sent {shown} to a connection that sent "
                    f"{owed} (only the error message 'idle-timeout' may come before the close)"
                )
        if idle.ended is None and now - idle.opened > self.idle_bound:
            return (
                f"{idle.label} ({what}): still open after {now - idle.opened:.1f} s idle; the server "
                f"must close it within {self.idle_bound:g} s (an idle timeout of {self.idle_timeout:g} s "
                f"and a margin; docs/PROTOCOL.md#l2)"
            )
        return None

    def _run_memory(self) -> tuple[list[Step], CaseResult] | None:
        self._memory_verdict = "running"
        for program in memory_programs():
            started = time.monotonic()
            result = self.runner.run(program)
            log.info("memory sentinel %s: %.1f s, %s", program[0], time.monotonic() - started, result.failure)
            if result.failure is not None:
                self._memory_verdict = "failed"
                return program, result
        self._memory_verdict = (
            "L3 judged: a client that never reads and 96 requests of 1000 KiB, RSS within the bound"
        )
        return None

    # -- the summary --------------------------------------------------------------------

    def notes(self, seconds: float) -> list[str]:
        """What the sentinels judged, or why not, for the summary of a run that found nothing."""
        out: list[str] = []
        if self.idle_bound is not None:
            if self._idle_verdict is not None:
                out.append(self._idle_verdict)
            else:
                out.append(
                    f"L2 not judged: the run lasted {seconds:.0f} s, the idle sentinel needs "
                    f"{self.idle_bound:g} s (idle timeout {self.idle_timeout:g} s and a margin)"
                )
        if self.memory:
            if self._memory_verdict is not None and self._memory_verdict not in ("running", "failed"):
                out.append(self._memory_verdict)
            elif self.memory_at is None:
                out.append(f"L3 sentinels not run: they need --max-time of at least {2 * BURST_RESERVE:g} s")
            else:
                out.append(f"L3 sentinels not run: the run ended before {self.memory_at:g} s")
        return out
