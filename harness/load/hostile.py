"""The hostile mix: well-behaved clients among slow senders, huge declarers and non-readers.

It measures what the reference server's limits (idle timeout, content-length limit,
backpressure) buy: see docs/load.md#hardening and ``benchmarks/bench_hardening.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

from harness.decoder import Decoder
from harness.errors import ProtocolError
from harness.frames import DEFAULT_MAX_CONTENT_LENGTH, FrameReader, frame
from harness.load.answers import error_code, error_kind
from harness.load.config import default_requests
from harness.message import Message

__all__ = ["HostileMix", "HostileResult", "run_hostile_mix", "run_hostile_mix_async"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostileMix:
    """Well-behaved clients among hostile ones (sizes of issue 7's hardening benchmark).

    - ``slow_senders`` each trickle a valid request, one byte every ``slow_interval``
      seconds: the server's idle timeout must cut them off;
    - ``huge_declarers`` each send a header declaring ``huge_length`` bytes of content,
      then start sending it: the server must refuse at once, without buffering;
    - ``non_readers`` each send search requests whose value is ``non_reader_value_size``
      bytes (the answer echoes it) as fast as the server takes them, and never read:
      the server's memory must stay bounded;
    - ``well_behaved`` clients, started once the hostile ones are in place, each make
      ``requests_per_client`` requests one after the other and check every answer
      byte for byte against :func:`harness.apps.search_app`.
    """

    slow_senders: int = 200
    slow_interval: float = 0.5
    huge_declarers: int = 50
    huge_length: int = 1 << 40
    non_readers: int = 50
    non_reader_value_size: int = 256 * 1024
    well_behaved: int = 100
    requests_per_client: int = 10
    timeout: float = 10.0  # per well-behaved request, per huge-declarer refusal
    stall_after: float = 1.0  # a non-reader whose send makes no progress this long has stalled
    settle_timeout: float = 15.0  # wait at most this long for the non-readers to stall
    slow_deadline: float = 60.0  # wait at most this long for every slow sender to be cut off
    status_interval: float = 2.0  # an INFO log line on progress this often


@dataclass
class HostileResult:
    """What :func:`run_hostile_mix` saw. Times in seconds."""

    well_behaved: int
    answered_in_full: int
    well_behaved_failures: dict[str, int]
    slow_senders: int
    slow_cut_off: int
    slow_answers: int  # requests a slow sender managed to complete (0 when the timeout works)
    slow_cut_off_after_max: float  # connection open time of the longest-lived slow sender
    huge_declarers: int
    huge_refused: int
    huge_refusal_max: float  # header sent -> error message and close, worst case
    huge_codes: dict[str, int]
    non_readers: int
    non_readers_stalled: int
    non_reader_bytes_sent: int
    elapsed: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


async def _read_all(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            data += chunk
    return bytes(data)


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    transport.abort()


def _error_code(data: bytes) -> str | None:
    """The ``error`` code of the first error message in ``data``, if there is one."""
    try:
        found = FrameReader(DEFAULT_MAX_CONTENT_LENGTH).feed(data)
    except ProtocolError:
        return None
    for header, content, _ in found:
        code = error_code(header, content)
        if code is not None:
            return code
    return None


async def run_hostile_mix_async(host: str, port: int, mix: HostileMix) -> HostileResult:
    """Run ``mix`` against ``host:port``; see :class:`HostileMix`."""
    from harness.apps import search_app  # the expected answers (the application is pure)

    loop = asyncio.get_running_loop()
    started = loop.time()
    stop = asyncio.Event()
    failures: Counter[str] = Counter()
    slow_open_times: list[float] = []
    slow_answers = 0
    huge_times: list[float] = []
    huge_codes: Counter[str] = Counter()
    stalled: list[asyncio.Event] = [asyncio.Event() for _ in range(mix.non_readers)]
    non_reader_bytes = 0
    requests = default_requests()
    slow_request = requests[0]

    async def slow_sender() -> None:
        nonlocal slow_answers
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["slow-sender-connect:" + error_kind(exc)] += 1
            return
        opened = loop.time()
        reading = asyncio.ensure_future(_read_all(reader))
        try:
            i = 0
            while not reading.done() and not stop.is_set():
                try:
                    writer.write(slow_request[i : i + 1])
                except (ConnectionError, RuntimeError):
                    break
                i = (i + 1) % len(slow_request)
                await asyncio.wait([reading], timeout=mix.slow_interval)
            if reading.done():
                slow_open_times.append(loop.time() - opened)
                with contextlib.suppress(ProtocolError):
                    found = FrameReader(DEFAULT_MAX_CONTENT_LENGTH).feed(reading.result())
                    slow_answers += sum(1 for h, content, _ in found if error_code(h, content) is None)
        finally:
            reading.cancel()
            _abort(writer)

    async def huge_declarer() -> None:
        header = (
            f'{{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
            f'"content-encoding": "binary", "content-length": {mix.huge_length}}}'
        ).encode()
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["huge-declarer-connect:" + error_kind(exc)] += 1
            return
        try:
            writer.write(frame(header))  # the header alone: its content follows, or not
            sent = loop.time()
            with contextlib.suppress(ConnectionError):
                writer.write(b"\x00" * 65536)  # the start of the "content"
            try:
                data = await asyncio.wait_for(_read_all(reader), mix.timeout)
            except TimeoutError:
                huge_codes["not refused"] += 1
                return
            huge_times.append(loop.time() - sent)
            huge_codes[_error_code(data) or "closed without an error message"] += 1
        finally:
            _abort(writer)

    async def non_reader(index: int) -> None:
        nonlocal non_reader_bytes
        value = "x" * mix.non_reader_value_size
        big = Message.from_json({"action": "search", "value": value}).encode()
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["non-reader-connect:" + error_kind(exc)] += 1
            stalled[index].set()
            return
        try:
            while not stop.is_set():
                writer.write(big)
                try:
                    await asyncio.wait_for(writer.drain(), mix.stall_after)
                except TimeoutError:
                    break  # the server stopped reading us: backpressure works
                except ConnectionError:
                    break
                non_reader_bytes += len(big)
            stalled[index].set()
            await stop.wait()
        finally:
            stalled[index].set()
            _abort(writer)

    async def well_behaved(index: int) -> None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), mix.timeout)
        except (OSError, TimeoutError) as exc:
            failures["connect:" + error_kind(exc)] += 1
            return
        decoder = Decoder(DEFAULT_MAX_CONTENT_LENGTH)
        try:
            for k in range(mix.requests_per_client):
                raw = requests[(index + k) % len(requests)]
                (request,) = Decoder(DEFAULT_MAX_CONTENT_LENGTH).feed(raw)
                expected = search_app(request)
                writer.write(raw)
                answers: list[Message] = []
                deadline = loop.time() + mix.timeout
                while not answers:
                    chunk = await asyncio.wait_for(reader.read(65536), max(0.0, deadline - loop.time()))
                    if not chunk:
                        failures["closed-by-server"] += 1
                        return
                    answers = decoder.feed(chunk)
                if answers != [expected]:
                    failures["wrong-answer"] += 1
                    return
            well_done.append(index)
        except (OSError, TimeoutError, ProtocolError) as exc:
            failures[error_kind(exc)] += 1
        finally:
            _abort(writer)

    well_done: list[int] = []
    slow_tasks = [asyncio.ensure_future(slow_sender()) for _ in range(mix.slow_senders)]
    huge_tasks = [asyncio.ensure_future(huge_declarer()) for _ in range(mix.huge_declarers)]
    reader_tasks = [asyncio.ensure_future(non_reader(i)) for i in range(mix.non_readers)]

    async def report() -> None:  # a status line every status_interval, for long mixes
        while True:
            await asyncio.sleep(mix.status_interval)
            log.info(
                "%5.1f s: well-behaved %d/%d done; slow senders cut off %d/%d; huge refused %d/%d; "
                "non-readers stalled %d/%d",
                loop.time() - started,
                len(well_done),
                mix.well_behaved,
                len(slow_open_times),
                mix.slow_senders,
                len(huge_times),
                mix.huge_declarers,
                sum(e.is_set() for e in stalled),
                mix.non_readers,
            )

    reporter = asyncio.ensure_future(report())
    try:
        if stalled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(e.wait() for e in stalled)), mix.settle_timeout)
        log.info(
            "hostile clients in place after %.1f s; starting %d well-behaved clients",
            loop.time() - started,
            mix.well_behaved,
        )
        await asyncio.gather(*(well_behaved(i) for i in range(mix.well_behaved)))
        if huge_tasks:
            await asyncio.wait(huge_tasks, timeout=mix.timeout)
        if slow_tasks:
            await asyncio.wait(slow_tasks, timeout=max(0.0, started + mix.slow_deadline - loop.time()))
    finally:
        stop.set()
        for task in [*slow_tasks, *huge_tasks, *reader_tasks, reporter]:
            task.cancel()
        await asyncio.gather(*slow_tasks, *huge_tasks, *reader_tasks, reporter, return_exceptions=True)
    return HostileResult(
        well_behaved=mix.well_behaved,
        answered_in_full=len(well_done),
        well_behaved_failures=dict(failures),
        slow_senders=mix.slow_senders,
        slow_cut_off=len(slow_open_times),
        slow_answers=slow_answers,
        slow_cut_off_after_max=max(slow_open_times, default=0.0),
        huge_declarers=mix.huge_declarers,
        huge_refused=sum(n for code, n in huge_codes.items() if code not in ("not refused",)),
        huge_refusal_max=max(huge_times, default=0.0),
        huge_codes=dict(huge_codes),
        non_readers=mix.non_readers,
        non_readers_stalled=sum(e.is_set() for e in stalled),
        non_reader_bytes_sent=non_reader_bytes,
        elapsed=loop.time() - started,
    )


def run_hostile_mix(host: str, port: int, mix: HostileMix) -> HostileResult:
    """:func:`run_hostile_mix_async` on a new event loop."""
    return asyncio.run(run_hostile_mix_async(host, port, mix))
