"""The pipelined client: long-lived connections, each keeping ``depth`` requests in flight.

Every answer received is replaced at once by a new request, written together with
the others that the same ``recv`` completed. Answers are read in two ways:

- the *fast path*: once the run knows the expected answer to every request
  (:class:`~harness.load.state.RunState`), as many whole expected answers as the
  bytes received hold are compared with them at once, with one ``startswith``:
  that is a comparison, not parsing, and costs well under a microsecond per
  answer, so the generator is not the bottleneck;
- whatever the fast path does not take goes to the connection's
  :class:`~harness.frames.FrameReader`, and each frame's header and content are
  judged (:class:`~harness.load.answers.Verdicts`).

The reader sees a stream of whole frames: the fast path runs only while the
reader stands at a frame boundary (nothing buffered) and takes whole answers off
the front of the bytes; when the reader holds part of a frame, it is given the
rest of that frame first. Its offsets therefore count the bytes it was given,
not the bytes of the connection. The bytes of a frame the reader holds in part
are kept too, so that an answer split across reads is learnt like any other.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_right
from collections import deque
from typing import cast

from harness.errors import ProtocolError
from harness.frames import Frame, FrameReader
from harness.load.answers import error_kind
from harness.load.state import RunState

__all__ = ["PipelineClient", "pipeline_worker"]

_now = time.perf_counter_ns


class PipelineClient(asyncio.Protocol):
    """One long-lived connection keeping ``depth`` requests in flight."""

    def __init__(self, run: RunState, index: int) -> None:
        self.run = run
        self.index = index % run.n_requests  # next request to send, an index into the ring
        self.transport: asyncio.Transport | None = None
        self.frames = FrameReader(run.config.max_content_length)
        self.partial: list[bytes] = []  # the bytes of the frame the reader holds in part
        self.sent_at: deque[list[int]] = deque()  # [send time, requests sent then] runs
        self.in_flight = 0
        self.answer_index = self.index  # the request the next answer answers
        self.last_activity = _now()
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failed = False

    def _send(self, k: int) -> None:
        run = self.run
        i = self.index
        assert self.transport is not None
        ring, offsets = run.ring, run.offsets
        if run.config.coalesce:
            self.transport.write(ring[offsets[i] : offsets[i + k]])
        else:
            write = self.transport.write
            for j in range(i, i + k):
                write(ring[offsets[j] : offsets[j + 1]])
        self.index = (i + k) % run.n_requests
        self.sent_at.append([_now(), k])
        self.in_flight += k
        if run.measuring:
            run.sent += k

    def send_due(self, due: list[int]) -> None:
        """Send ``len(due)`` requests in one write; their latency counts from the times ``due``."""
        run = self.run
        i = self.index
        k = len(due)
        assert self.transport is not None
        self.transport.write(run.ring[run.offsets[i] : run.offsets[i + k]])
        self.index = (i + k) % run.n_requests
        self.sent_at.extend([t, 1] for t in due)
        self.in_flight += k
        if run.measuring:
            run.sent += k

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.run.clients.add(self)
        self.last_activity = _now()
        if self.run.scheduler is not None:
            self.run.scheduler.dispatch()
        else:
            self._send(self.run.config.depth)

    def data_received(self, data: bytes) -> None:
        run = self.run
        frames = self.frames
        errors: list[str] = []
        good = 0
        pos = 0
        end = len(data)
        try:
            while frames.buffered and pos < end:
                # The reader holds the start of a frame: give it the rest of that frame (a
                # piece at a time: prefix, header, content) and no more, so that it stands
                # at a frame boundary before the fast path takes whole answers.
                stop = min(end, pos + frames.bytes_needed)
                piece = data[pos:stop]
                pos = stop
                self.partial.append(piece)
                found = frames.feed(piece)
                if found:
                    whole = b"".join(self.partial)
                    self.partial.clear()
                    good += self._judge(found, errors, whole, found[0].offset)
            ring = run.expected_ring
            due = self.in_flight - good - len(errors)
            if ring is not None and due > 0 and pos < end:
                # Fast path: as many whole expected answers as the bytes hold, compared at once.
                offsets = run.expected_offsets
                i = self.answer_index
                base = offsets[i]
                j = bisect_right(offsets, base + end - pos, i, i + due + 1) - 1
                if j > i and data.startswith(ring[base : offsets[j]], pos):
                    pos += offsets[j] - base
                    good += j - i
                    self.answer_index = j % run.n_requests
            if pos < end:
                rest = data[pos:] if pos else data
                start = frames.offset  # the stream offset of rest[0]: the reader buffers nothing
                good += self._judge(frames.feed(rest), errors, rest, start)
                if frames.buffered:
                    self.partial.append(rest[frames.offset - start :])
        except ProtocolError as exc:
            self._fail(error_kind(exc))
            return
        count = good + len(errors)
        if not count:
            return
        now = _now()
        self.last_activity = now
        run.seen += count
        sent_at = self.sent_at
        if count > self.in_flight:
            self._fail("unsolicited-response")
            return
        self.in_flight -= count
        add = run.latency.add  # warm-up included, for the status line; the result subtracts it
        left = count
        while left:
            run_ = sent_at[0]
            if run_[1] <= left:
                add(now - run_[0], run_[1])
                left -= run_[1]
                sent_at.popleft()
            else:
                add(now - run_[0], left)
                run_[1] -= left
                left = 0
        if run.measuring:
            run.answers += good
            for kind in errors:
                run.errors[kind] += 1
        if run.sending:
            if run.scheduler is not None:
                run.scheduler.dispatch()
            else:
                self._send(count)
        elif not self.in_flight:
            self.close()

    def _judge(self, found: list[Frame], errors: list[str], chunk: bytes, start: int) -> int:
        """Judge the frames ``found``, in order; return how many were good answers.

        The error kinds of the others are appended to ``errors``. ``chunk`` is
        the stream from offset ``start`` (the first frame's) up to the reader's
        offset: the bytes of each good answer teach the run what to expect.
        """
        run = self.run
        verdicts = run.verdicts
        n = run.n_requests
        index = self.answer_index
        good = 0
        last = len(found) - 1
        for k, (header, content, offset) in enumerate(found):
            verdict = verdicts(header, content)
            if verdict is None:
                good += 1
                stop = found[k + 1].offset if k < last else self.frames.offset
                run.learn(index, chunk[offset - start : stop - start])
            else:
                errors.append(verdict)
            index = (index + 1) % n
        self.answer_index = index
        return good

    def _fail(self, kind: str) -> None:
        if not self.failed:
            self.failed = True
            self.run.error(kind)
        self.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def eof_received(self) -> bool | None:
        if self.in_flight and self.run.sending:
            self._fail("closed-by-server")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.clients.discard(self)
        if exc is not None:
            if self.run.sending:
                self._fail(error_kind(exc))
        elif self.in_flight and self.run.sending:
            self._fail("closed-by-server")
        if not self.done.done():
            self.done.set_result(None)

    def check_timeout(self, now: int) -> None:
        if self.in_flight and now - self.last_activity > self.run.config.timeout * 1e9:
            self._fail("timeout")


async def pipeline_worker(run: RunState, index: int) -> None:
    """Keep one connection open; reconnect when the server drops it, until the run ends."""
    loop = asyncio.get_running_loop()
    config = run.config
    while run.sending:
        try:
            _, client = await asyncio.wait_for(
                loop.create_connection(lambda: PipelineClient(run, index), config.host, config.port),
                config.timeout,
            )
        except (OSError, TimeoutError) as exc:
            run.error("connect-" + error_kind(exc).removeprefix("connect-"))
            await asyncio.sleep(0.05)  # back off: a refused connect must not spin the loop
            continue
        await client.done
