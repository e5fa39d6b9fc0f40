"""A server under measurement in a child process: start it, wait until it listens, read its RSS, stop it."""

from __future__ import annotations

import logging
import os
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

__all__ = ["ServerProcess"]

log = logging.getLogger(__name__)


class ServerProcess:
    """A server in a child process, for measurements that must not share a core with the generator.

    ``argv`` must start a server that prints ``Listening on HOST:PORT`` as its first stdout
    line (``harness serve`` and ``benchmarks/echo_server.py`` do). :meth:`start` waits for
    that line (at most ``startup_timeout`` seconds) and returns the address. The
    child's peak resident set size is read from ``/proc`` (:meth:`peak_rss`).
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        startup_timeout: float = 15.0,
        stderr: int | IO[Any] | None = subprocess.DEVNULL,
        preexec_fn: Callable[[], Any] | None = None,
    ) -> None:
        self.argv = list(argv)
        self.startup_timeout = startup_timeout
        self.stderr = stderr
        self.preexec_fn = preexec_fn
        self.process: subprocess.Popen[bytes] | None = None
        self.address: tuple[str, int] | None = None

    @classmethod
    def reference(cls, *options: str, **kwargs: Any) -> ServerProcess:
        """``python -m harness serve --port 0`` plus ``options``."""
        return cls([sys.executable, "-m", "harness", "serve", "--port", "0", *options], **kwargs)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def start(self) -> tuple[str, int]:
        if self.process is not None:
            raise RuntimeError("this server process was already started: make another ServerProcess")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            preexec_fn=self.preexec_fn,  # unsafe if this process has threads: prefer an exec shim
        )
        assert self.process.stdout is not None
        line = b""
        deadline = time.monotonic() + self.startup_timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    self.stop()
                    raise TimeoutError(
                        f"{self.argv!r} printed no 'Listening on' line in {self.startup_timeout}s"
                    )
                chunk = os.read(self.process.stdout.fileno(), 1)
                if not chunk:
                    try:
                        code: int | None = self.process.wait(max(0.1, deadline - time.monotonic()))
                    except subprocess.TimeoutExpired:  # it closed its stdout but runs on
                        code = None
                    self.stop()
                    if code is None:
                        raise RuntimeError(f"{self.argv!r} closed its stdout before listening")
                    raise RuntimeError(f"{self.argv!r} exited with {code} before listening")
                line += chunk
        match = re.match(rb"Listening on (.+):(\d+)\s*$", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"unexpected first line from the server: {line!r}")
        host = match.group(1).decode().strip("[]")
        self.address = (host, int(match.group(2)))
        log.info("server pid %d listening on %s:%d", self.process.pid, *self.address)
        return self.address

    def peak_rss(self) -> int:
        """The child's peak resident set size in bytes (``VmHWM``), 0 once it is gone."""
        return _proc_status_kib(self.pid, "VmHWM") * 1024

    def rss(self) -> int:
        """The child's current resident set size in bytes (``VmRSS``)."""
        return _proc_status_kib(self.pid, "VmRSS") * 1024

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; return the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("server pid %d ignored SIGTERM; killing it", process.pid)
                process.kill()
                process.wait(timeout)
        if process.stdout is not None:
            process.stdout.close()
        return process.returncode

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _proc_status_kib(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except FileNotFoundError:
        return 0
    return 0
