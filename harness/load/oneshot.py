"""The guide's client pattern: a new connection for every request, one answer read, then close."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, cast

from harness.errors import ProtocolError
from harness.frames import FrameReader
from harness.load.answers import error_kind
from harness.load.state import RunState

__all__ = ["OneShotClient", "oneshot_worker"]

_now = time.perf_counter_ns


class OneShotClient(asyncio.Protocol):
    """Send one request, read one response (through a frame reader), close."""

    def __init__(self, run: RunState, request: bytes) -> None:
        self.run = run
        self.request = request
        self.frames = FrameReader(run.config.max_content_length)
        self.transport: asyncio.Transport | None = None
        self.result: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        # A run that ends cancels the waiting worker: the connection's fate is then of no interest.
        self.result.add_done_callback(_consume_exception)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if self.result.done():
            return
        try:
            found = self.frames.feed(data)
        except ProtocolError as exc:
            self.result.set_exception(exc)
            return
        if found:
            header, content, _ = found[0]
            self.result.set_result(self.run.verdicts(header, content))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.result.done():
            self.result.set_exception(exc or ConnectionResetError("closed before the answer"))


def _consume_exception(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


async def oneshot_worker(run: RunState, index: int) -> None:
    """Make one request per connection, one after the other, until the run ends."""
    loop = asyncio.get_running_loop()
    config = run.config
    i = index % run.n_requests
    while run.sending:
        request = config.requests[i]
        i = (i + 1) % run.n_requests
        start = _now()
        transport: asyncio.BaseTransport | None = None
        try:
            async with asyncio.timeout(config.timeout):
                transport, client = await loop.create_connection(
                    functools.partial(OneShotClient, run, request), config.host, config.port
                )
                verdict = await client.result
        except (OSError, TimeoutError, ProtocolError) as exc:
            run.error(error_kind(exc))
            if isinstance(exc, ConnectionRefusedError):
                await asyncio.sleep(0.05)  # back off: a refused connect must not spin the loop
            continue
        finally:
            if transport is not None:
                transport.close()
        run.seen += 1
        run.latency.add(_now() - start)
        if run.measuring:
            run.sent += 1
            if verdict is None:
                run.answers += 1
            else:
                run.errors[verdict] += 1
