"""``harness serve --chaos KIND``: the hostile server of one check, serving until stopped.

Every connection gets its request answered the way the check ``KIND`` of
:data:`~harness.clientprobe.checks.CHECKS` answers it (split, dripped, spoiled,
cut short, reset, never...). A kind that does not fit a request (``binary`` for a
search request, a content violation for a binary one) answers it normally and says so
in the log.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from types import FrameType

from harness.clientprobe.checks import get_check
from harness.clientprobe.hostile import HostileServer

__all__ = ["serve_chaos"]

log = logging.getLogger(__name__)


def serve_chaos(kind: str, host: str, port: int, ready: Callable[[tuple[str, int]], None]) -> None:
    """Serve the misbehaviour ``kind`` on ``host``:``port`` until SIGINT or SIGTERM.

    ``ValueError`` for an unknown kind; ``OSError`` when the address cannot be bound.
    """
    check = get_check(kind)
    server = HostileServer(check.plan, host, port, keep=0, label=f"chaos {kind}")

    def stop(signum: int, frame: FrameType | None) -> None:
        server.stop(timeout=0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with server:
            ready(server.address)
            log.info("serving the misbehaviour %r: %s", kind, check.summary)
            server.wait_stopped()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
