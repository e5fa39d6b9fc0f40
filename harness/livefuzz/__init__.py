"""Generative fuzzing of a live lpjson server (``harness fuzz server``, ``harness replay``).

- :mod:`~harness.livefuzz.program`: the steps of a case, as data (JSON for replay files),
  and the Hypothesis strategy that generates them;
- :mod:`~harness.livefuzz.oracle`: what the reference ``ServerConnection`` says a
  connection must answer, and whether it must close;
- :mod:`~harness.livefuzz.runner`: runs a program over real sockets and judges it;
- :mod:`~harness.livefuzz.engine`: the Hypothesis search, budget, shrinking, feedback;
- :mod:`~harness.livefuzz.sentinels`: run-long checks beside the programs (an idle timeout,
  a client that never reads, a server that keeps what it served);
- :mod:`~harness.livefuzz.replay`: replay files and captures;
- :mod:`~harness.livefuzz.target`: an address, a supervised command or the embedded server.

Hypothesis is imported only when a program is generated (the fuzz extra).
"""

from harness.livefuzz.oracle import ConnectionOracle, compare
from harness.livefuzz.program import Close, HalfClose, Idle, Open, Read, Send, Step, describe
from harness.livefuzz.runner import CaseResult, Runner

__all__ = [
    "CaseResult",
    "Close",
    "ConnectionOracle",
    "HalfClose",
    "Idle",
    "Open",
    "Read",
    "Runner",
    "Send",
    "Step",
    "compare",
    "describe",
]
