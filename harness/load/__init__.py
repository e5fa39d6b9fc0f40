"""An lpjson load generator: many connections, pipelined requests, latency percentiles.

Two client patterns, both on asyncio protocols (uvloop when asked and installed):

- ``pipeline`` (the default, :mod:`harness.load.pipeline`): ``connections``
  long-lived connections, each keeping ``depth`` requests in flight;
- ``connect-per-request`` (:mod:`harness.load.oneshot`): the guide's client
  pattern, a new connection for every request.

An *answer* is any well-formed lpjson message coming back, in order; an echo server
returning the requests themselves therefore counts as a perfect server (that is the
point: it is the ceiling a Python server can reach on this loopback). Responses are
read with the frame layer (:class:`harness.frames.FrameReader`); a response carrying
an ``{"error": ...}`` object (the reference server's error message) counts as an
error, not an answer (:mod:`harness.load.answers`). Once the first good answer to
every request is known, a batch of answers is checked byte for byte against the
expected ones with a single comparison, so the generator costs well under a
microsecond of CPU per answer and is not the bottleneck. Latencies go into a
:class:`LatencyHistogram` (bounded memory).

The modules: :mod:`~harness.load.config` (what a run is given and gives back),
:mod:`~harness.load.histogram`, :mod:`~harness.load.answers` (verdicts on
responses), :mod:`~harness.load.state` (what a run's connections share),
:mod:`~harness.load.pipeline`, :mod:`~harness.load.oneshot`,
:mod:`~harness.load.rate` (a fixed arrival rate, latency from the intended send
time), :mod:`~harness.load.thresholds` (pass/fail limits),
:mod:`~harness.load.run` (:func:`run_load`), :mod:`~harness.load.process` (a
server in a child process) and :mod:`~harness.load.hostile` (the hostile mix).

Library code here logs; :func:`run_load` reports progress through a callback and the
``harness load`` command prints it.
"""

from __future__ import annotations

from harness.load.config import CSV_COLUMNS, MODES, LoadConfig, LoadResult, LoadStatus, default_requests
from harness.load.histogram import LatencyHistogram
from harness.load.hostile import HostileMix, HostileResult, run_hostile_mix, run_hostile_mix_async
from harness.load.process import ServerProcess
from harness.load.rate import RateScheduler
from harness.load.run import run_load, run_load_async
from harness.load.thresholds import Thresholds

__all__ = [
    "CSV_COLUMNS",
    "MODES",
    "HostileMix",
    "HostileResult",
    "LatencyHistogram",
    "LoadConfig",
    "LoadResult",
    "LoadStatus",
    "RateScheduler",
    "ServerProcess",
    "Thresholds",
    "default_requests",
    "run_hostile_mix",
    "run_hostile_mix_async",
    "run_load",
    "run_load_async",
]
