"""One load run: start the workers, keep time, report status, gather the result."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from harness.load.config import LoadConfig, LoadResult, LoadStatus
from harness.load.histogram import LatencyHistogram
from harness.load.oneshot import oneshot_worker
from harness.load.pipeline import pipeline_worker
from harness.load.rate import RateScheduler
from harness.load.state import RunState

__all__ = ["run_load", "run_load_async"]

log = logging.getLogger(__name__)

_now = time.perf_counter_ns


async def run_load_async(
    config: LoadConfig, progress: Callable[[LoadStatus], None] | None = None
) -> LoadResult:
    """Run ``config`` on the running event loop and return what was measured."""
    run = RunState(config)
    loop = asyncio.get_running_loop()
    worker = pipeline_worker if config.mode == "pipeline" else oneshot_worker
    start = _now()
    window_start = start

    before_window = LatencyHistogram()

    def start_measuring() -> None:
        nonlocal window_start, before_window
        window_start = _now()
        before_window = run.latency.copy()
        run.measuring = True

    if config.warmup > 0:
        measuring_handle: asyncio.TimerHandle | None = loop.call_later(config.warmup, start_measuring)
    else:
        measuring_handle = None
        run.measuring = True
    finished = asyncio.Event()
    stop_handle = loop.call_later(config.warmup + config.duration, finished.set)
    if config.rate is not None:
        run.scheduler = RateScheduler(run, config.rate, start)
        run.scheduler.begin()
    tasks = [asyncio.create_task(worker(run, i)) for i in range(config.connections)]
    tick = min(0.25, config.status_interval)
    next_status = start + int(config.status_interval * 1e9)
    last_seen = 0
    last_latency = LatencyHistogram()
    last_status = start
    intervals: list[LoadStatus] = []
    try:
        while not finished.is_set():
            now = _now()
            for client in list(run.clients):
                client.check_timeout(now)
            if now >= next_status:
                recent = run.latency.since(last_latency)
                seconds = (now - last_status) / 1e9
                status = LoadStatus(
                    elapsed=(now - start) / 1e9,
                    measuring=run.measuring,
                    answers=run.answers,
                    interval_rate=(run.seen - last_seen) / seconds if seconds > 0 else 0.0,
                    interval_p99_ms=recent.percentile(99) / 1e6,
                    errors=sum(run.errors.values()),
                    open_connections=len(run.clients),
                    interval_p50_ms=recent.percentile(50) / 1e6,
                    interval_p999_ms=recent.percentile(99.9) / 1e6,
                    waiting=run.scheduler.waiting if run.scheduler is not None else 0,
                )
                intervals.append(status)
                if progress is not None:
                    progress(status)
                last_seen = run.seen
                last_latency = run.latency.copy()
                last_status = now
                next_status = now + int(config.status_interval * 1e9)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), tick)
    finally:
        end = _now()
        window = run.latency.since(before_window)
        run.sending = False
        waiting = 0
        if run.scheduler is not None:
            run.scheduler.stop()
            waiting = run.scheduler.waiting
        stop_handle.cancel()
        if measuring_handle is not None:
            measuring_handle.cancel()
        run.measuring = False
        for task in tasks:
            task.cancel()
        for client in list(run.clients):
            client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    return LoadResult(
        host=config.host,
        port=config.port,
        mode=config.mode,
        connections=config.connections,
        depth=config.depth if config.mode == "pipeline" else 1,
        duration=(end - window_start) / 1e9,
        answers=run.answers,
        sent=run.sent,
        errors=dict(run.errors),
        latency=window,
        rate=config.rate,
        waiting=waiting,
        intervals=intervals,
    )


def run_load(
    config: LoadConfig,
    progress: Callable[[LoadStatus], None] | None = None,
    *,
    use_uvloop: bool = False,
) -> LoadResult:
    """Run ``config`` on a new event loop (uvloop's when asked and installed)."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; using the default asyncio event loop")
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(run_load_async(config, progress))
    return asyncio.run(run_load_async(config, progress))
