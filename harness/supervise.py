"""Supervise a server under test: start it, wait until it accepts, watch it, stop it.

A process monitor in the manner of boofuzz's and pytest-xprocess, for a user's own
server started from a command line::

    with ServerUnderTest(["python", "server.py", "{host}", "{port}"]) as server:
        mark = server.mark()
        with server.rss_sampler() as sampler:
            ...  # one check against server.address
        seen = server.observe(mark, rss=sampler.result)
        if seen.death is not None:
            server.restart()

- ``{host}`` and ``{port}`` in any argument are replaced (a free loopback port is
  picked when none is given); :meth:`ServerUnderTest.start` waits, with a bound, until
  a TCP connection to that address succeeds, and otherwise raises
  :class:`ServerStartError`: one line saying whether the process exited (and how) or
  never listened, then the tail of its stderr.
- The process runs in its own process group; :meth:`~ServerUnderTest.stop` sends
  SIGTERM to the group, waits, then SIGKILL, and reaps it (no zombies, no open pipes).
- Its stdout and stderr are read by a background thread into bounded ring buffers of
  timestamped lines, so the server never blocks on a full pipe. A :class:`Mark` taken
  before a check gives what the server printed during it (:meth:`~ServerUnderTest.since`),
  the Python tracebacks among that output as one-liners ("raised KeyError: 'value'",
  :meth:`~ServerUnderTest.tracebacks_since`) and whether it died meanwhile
  (:meth:`~ServerUnderTest.died_since`: exit status and last stderr lines).
- Memory: :meth:`~ServerUnderTest.rss` sums the resident set size of the process and
  its descendants; an :class:`RssSampler` samples it every 20 ms in a thread around a
  check and reports baseline, peak and growth (:class:`RssSample`), growth over the
  server's ``rss_limit`` being the unsafe case.

A server found dead before a check (``alive`` is False) should be restarted before the
mark, since :meth:`~ServerUnderTest.died_since` only reports deaths after it.
:meth:`~ServerUnderTest.observe` first reads everything the server has written; it waits
for ``quiet`` seconds of silence (20 ms) only when the server printed within them.

Linux only (``/proc``, process groups). A :class:`ServerUnderTest` is driven from one
thread; only the samplers and the output reader run beside it. Library code: it logs
through ``logging`` and never prints.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import select
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

__all__ = [
    "DEFAULT_RSS_LIMIT",
    "Death",
    "Mark",
    "MiB",
    "Observation",
    "OutputLine",
    "PrintedTraceback",
    "RssSample",
    "RssSampler",
    "ServerStartError",
    "ServerUnderTest",
    "SupervisorError",
    "describe_status",
    "find_free_port",
    "parse_tracebacks",
    "tree_rss",
]

log = logging.getLogger(__name__)

MiB = 1 << 20
#: Growth of the server's RSS during one check beyond which the check is unsafe.
DEFAULT_RSS_LIMIT = 64 * MiB
#: Lines of stderr quoted when the server fails to start or dies.
TAIL_LINES = 20

Stream = Literal["stdout", "stderr"]
_STREAMS: tuple[Stream, ...] = ("stdout", "stderr")

_POLL = 0.02  # the pause between readiness attempts, and between checks of a pipe being drained
_PARTIAL_FLUSH = 0.05  # a line without its newline is recorded after this long
_MAX_LINE = 4096  # longer lines are cut into pieces of this many bytes
_EOF_WAIT = 2.0  # how long to wait for the output pipes to close after the process exits
_KEPT_RUNS = 8  # runs (start() to exit) remembered for died_since()
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_MAX_DESCENDANTS = 256


class SupervisorError(Exception):
    """Something went wrong with the server under test (not with the caller's use of this module)."""


class ServerStartError(SupervisorError):
    """The server did not come up: it exited, never accepted a connection, or could not be run.

    ``str()`` is one line saying which, then the last lines of the server's stderr.
    """

    def __init__(
        self,
        headline: str,
        *,
        command: Sequence[str],
        returncode: int | None,
        stderr_tail: Sequence[str] | None,
    ) -> None:
        self.headline = headline
        self.command = tuple(command)
        #: The exit status when the process exited on its own before listening; None otherwise.
        self.returncode = returncode
        #: Its last lines of stderr; empty if it printed none, None if it never ran.
        self.stderr_tail = None if stderr_tail is None else tuple(stderr_tail)
        super().__init__(headline if self.stderr_tail is None else headline + _format_tail(self.stderr_tail))


def _format_tail(tail: Sequence[str]) -> str:
    if not tail:
        return "\n  (nothing on its stderr)"
    lines = "".join(f"\n  | {line}" for line in tail)
    return f"\n  last {len(tail)} line{'s' if len(tail) != 1 else ''} of its stderr:{lines}"


def describe_status(returncode: int) -> str:
    """``exited with status 3`` or ``was killed by SIGSEGV`` (``returncode`` as subprocess gives it)."""
    if returncode >= 0:
        return f"exited with status {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    return f"was killed by {name}"


# -- output -----------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputLine:
    """One line the server printed (without its newline), in arrival order across both streams."""

    seq: int
    time: float  # time.monotonic() when it was read
    stream: Stream
    text: str

    def __str__(self) -> str:
        return f"{self.stream}: {self.text}"


@dataclass(frozen=True)
class Mark:
    """A point in the server's life: output and deaths after it belong to what followed."""

    seq: int  # the sequence number the next output line gets
    generation: int  # which start() of the server was running (0: none yet)
    alive: bool
    time: float


@dataclass(frozen=True)
class PrintedTraceback:
    """A Python traceback found in the server's output."""

    stream: Stream
    lines: tuple[str, ...]
    #: The final line, e.g. ``KeyError: 'value'``; empty when the output ended before it.
    exception: str
    seq: int = 0  # sequence number of its first line

    @property
    def exception_type(self) -> str:
        return self.exception.split(":", 1)[0].strip()

    @property
    def summary(self) -> str:
        """``raised KeyError: 'value'``."""
        if not self.exception:
            return "printed a traceback that ends before its exception line"
        return f"raised {self.exception}"


@dataclass(frozen=True)
class Death:
    """The server process exited (on its own) after a mark."""

    returncode: int
    stderr_tail: tuple[str, ...]  # last lines of that run's stderr
    tracebacks: tuple[PrintedTraceback, ...]  # printed since the mark

    @property
    def status(self) -> str:
        return describe_status(self.returncode)

    @property
    def summary(self) -> str:
        """``exited with status 1 after it raised KeyError: 'value'``."""
        if self.tracebacks and self.tracebacks[-1].exception:
            return f"{self.status} after it raised {self.tracebacks[-1].exception}"
        return self.status

    def __str__(self) -> str:
        return f"the server {self.summary}" + _format_tail(self.stderr_tail)


class _Output:
    """The ring buffers of lines, shared by the reader thread and the supervising thread."""

    def __init__(self, max_lines: int) -> None:
        self.cond = threading.Condition()
        self.lines: dict[Stream, deque[OutputLine]] = {s: deque(maxlen=max_lines) for s in _STREAMS}
        self.next_seq = 0
        self.last_data = 0.0  # monotonic time of the last bytes read
        self.reading = 0  # chunks read from a pipe but not yet turned into lines
        self.partials = 0  # streams holding a line whose newline has not arrived

    def add(self, stream: Stream, raw: bytes | bytearray, now: float) -> None:
        """Record one line (caller holds ``cond``)."""
        text = bytes(raw).decode("utf-8", "replace").rstrip("\r")
        self.lines[stream].append(OutputLine(self.next_seq, now, stream, text))
        self.next_seq += 1

    def since(
        self, seq: int, end: int | None = None, streams: Iterable[Stream] = _STREAMS
    ) -> list[OutputLine]:
        with self.cond:
            found = [
                line
                for stream in streams
                for line in self.lines[stream]
                if line.seq >= seq and (end is None or line.seq < end)
            ]
        found.sort(key=lambda line: line.seq)
        return found


def _pump(fds: Mapping[Stream, int], wake_fd: int, output: _Output) -> None:
    """The reader thread: pipes -> lines, until both pipes close or ``wake_fd`` is written."""
    partial: dict[Stream, bytearray] = {s: bytearray() for s in fds}
    pending_since: dict[Stream, float] = {}

    def flush(stream: Stream, now: float) -> None:  # caller holds output.cond
        if stream in pending_since:
            output.add(stream, partial[stream], now)
            partial[stream].clear()
            del pending_since[stream]
            output.partials -= 1

    with selectors.DefaultSelector() as selector:
        for stream, fd in fds.items():
            selector.register(fd, selectors.EVENT_READ, stream)
        selector.register(wake_fd, selectors.EVENT_READ, None)
        open_streams = len(fds)
        while open_streams:
            timeout = None
            if pending_since:
                timeout = max(0.0, min(pending_since.values()) + _PARTIAL_FLUSH - time.monotonic())
            events = selector.select(timeout)
            if not events:  # a line without its newline waited long enough
                with output.cond:
                    now = time.monotonic()
                    for stream in list(pending_since):
                        if now - pending_since[stream] >= _PARTIAL_FLUSH:
                            flush(stream, now)
                    output.cond.notify_all()
                continue
            for key, _ in events:
                stream = key.data
                if stream is None:  # asked to stop: the pipes stay open elsewhere (a daemonised child)
                    with output.cond:
                        for name in list(pending_since):
                            flush(name, time.monotonic())
                        output.cond.notify_all()
                    return
                with output.cond:
                    output.reading += 1
                try:
                    chunk = os.read(key.fd, 65536)
                except OSError:
                    chunk = b""
                with output.cond:
                    output.reading -= 1
                    now = time.monotonic()
                    if not chunk:
                        flush(stream, now)
                        selector.unregister(key.fd)
                        open_streams -= 1
                    else:
                        output.last_data = now
                        buf = partial[stream]
                        buf += chunk
                        start = 0
                        while (end := buf.find(b"\n", start)) >= 0:
                            output.add(stream, buf[start:end], now)
                            start = end + 1
                        while len(buf) - start > _MAX_LINE:
                            output.add(stream, buf[start : start + _MAX_LINE], now)
                            start += _MAX_LINE
                        del buf[:start]
                        if buf and stream not in pending_since:
                            pending_since[stream] = now
                            output.partials += 1
                        elif not buf and stream in pending_since:
                            del pending_since[stream]
                            output.partials -= 1
                    output.cond.notify_all()


def _unread_bytes(fd: int) -> int:
    try:
        answer = fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0")
    except OSError:
        return 0
    count: int = struct.unpack("i", answer)[0]
    return count


# -- tracebacks -------------------------------------------------------------------------

_TB_HEADER = "Traceback (most recent call last):"
_GROUP_HEADER = "Exception Group Traceback (most recent call last):"
_CHAINS = (
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
)
# ``KeyError: 'value'``, ``json.decoder.JSONDecodeError: ...``, ``StopIteration``
_EXCEPTION_LINE = re.compile(r"[A-Za-z_][\w.]*(?::.*)?")
_GROUP_PREFIX = re.compile(r"^ *[+|] ?")
_MAX_TB_LINES = 500


def parse_tracebacks(lines: Sequence[str]) -> list[tuple[int, tuple[str, ...], str]]:
    """Find Python tracebacks in lines of output.

    Returns ``(index of the first line, the block's lines, final exception line)`` for each
    ``Traceback (most recent call last):`` block, through its frames to the final
    exception line; chained exceptions ("During handling of the above exception...")
    are one block whose exception is the last one. Lines that are neither frames nor an
    exception line (another thread's output interleaved) are skipped. A block cut off
    before its exception line is returned with an empty exception.
    """
    found: list[tuple[int, tuple[str, ...], str]] = []
    start = -1
    block: list[str] = []
    group = False  # an ExceptionGroup's traceback: its lines carry "| " / "+-" prefixes
    chained = False  # past an exception line, a "During handling..." line was seen
    exception = ""
    state = "idle"  # "frames": inside a block; "after": past an exception line, a chain may follow

    def close(final: str) -> None:
        nonlocal state
        while block and (not block[-1] or block[-1] in _CHAINS):
            block.pop()
        found.append((start, tuple(block), final))
        state = "idle"

    for index, line in enumerate(lines):
        text = line.rstrip()
        is_header = text.endswith(_TB_HEADER) or text.endswith(_GROUP_HEADER)
        content = _GROUP_PREFIX.sub("", text) if group else text
        if state == "after":
            if not content or content in _CHAINS:
                chained = chained or content in _CHAINS
                block.append(text)
                continue
            if is_header and chained:
                block.append(text)
                state, chained = "frames", False
                continue
            if group and _GROUP_PREFIX.match(text):  # the sub-exceptions of an exception group
                block.append(text)
                continue
            close(exception)
        elif state == "frames":
            if is_header and not (group and _GROUP_PREFIX.match(text)):
                close("")  # cut off: a new traceback began
            elif not content or content[0].isspace():
                block.append(text)
                if len(block) > _MAX_TB_LINES:
                    close("")
                continue
            elif _EXCEPTION_LINE.fullmatch(content):
                block.append(text)
                exception, state, chained = content.strip(), "after", False
                continue
            else:  # another thread's output in the middle of the traceback
                continue
        if is_header:
            start, block, exception, state = index, [text], "", "frames"
            group = text.endswith(_GROUP_HEADER)
    if state == "frames":
        close("")
    elif state == "after":
        close(exception)
    return found


def _tracebacks(lines: Sequence[OutputLine]) -> list[PrintedTraceback]:
    result: list[PrintedTraceback] = []
    for stream in _STREAMS:
        own = [line for line in lines if line.stream == stream]
        for index, block, exception in parse_tracebacks([line.text for line in own]):
            result.append(PrintedTraceback(stream, block, exception, own[index].seq))
    result.sort(key=lambda tb: tb.seq)
    return result


# -- memory -----------------------------------------------------------------------------


def _proc_rss(pid: int) -> int:
    """Resident set size of one process in bytes (``statm``: the same figure as VmRSS), 0 if gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _descendants(pid: int) -> list[int]:
    """The process's children, their children, ... (from /proc/PID/task/TID/children)."""
    found: list[int] = []
    todo = [pid]
    while todo and len(found) < _MAX_DESCENDANTS:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{parent}/task/{tid}/children", "rb") as children:
                    kids = [int(kid) for kid in children.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(kids)
            todo.extend(kids)
    return found[:_MAX_DESCENDANTS]


def tree_rss(pid: int) -> int:
    """RSS in bytes of a process and all its descendants (0 once it is gone)."""
    return _proc_rss(pid) + sum(_proc_rss(kid) for kid in _descendants(pid))


def _reset_peak_rss(pid: int) -> bool:
    """Reset the kernel's peak-RSS counter (VmHWM) of ``pid`` to its current RSS (Linux >= 4.0)."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def _peak_rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


@dataclass(frozen=True)
class RssSample:
    """What an :class:`RssSampler` saw: RSS (bytes) at its start, its peak, and the difference."""

    baseline: int
    peak: int
    growth: int
    samples: int = 0
    limit: int = DEFAULT_RSS_LIMIT

    @property
    def over_limit(self) -> bool:
        return self.growth > self.limit

    @property
    def summary(self) -> str:
        return (
            f"RSS grew by {self.growth / MiB:.1f} MiB (from {self.baseline / MiB:.1f} to a peak of "
            f"{self.peak / MiB:.1f} MiB; limit {self.limit / MiB:.0f} MiB)"
        )


class RssSampler:
    """Samples the RSS of a process tree in a daemon thread, every ``interval`` seconds.

    ``start()`` records the baseline and resets the kernel's peak counter of the process
    (so a spike between two samples still counts, for the main process); ``stop()``
    returns an :class:`RssSample`, also kept as :attr:`result`. A context manager.
    """

    def __init__(self, pid: int, *, interval: float = 0.02, limit: int = DEFAULT_RSS_LIMIT) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be > 0, not {interval!r}")
        self.pid = pid
        self.interval = interval
        self.limit = limit
        self.result: RssSample | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._baseline = 0
        self._peak = 0
        self._samples = 0
        self._hwm_reset = False
        self._on_stop: list[RssSampler] | None = None  # the server's list of running samplers

    def start(self) -> RssSampler:
        if self._thread is not None:
            raise RuntimeError("this sampler was already started: make another one")
        self._hwm_reset = _reset_peak_rss(self.pid)
        self._baseline = self._peak = tree_rss(self.pid)
        self._samples = 1
        self._thread = threading.Thread(target=self._run, name=f"supervise-rss-{self.pid}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        pids = [self.pid]
        while not self._stop.wait(self.interval):
            if self._samples % 25 == 1:  # children come and go: look for them now and then
                pids = [self.pid, *_descendants(self.pid)]
            self._sample(pids)

    def _sample(self, pids: Sequence[int]) -> None:
        total = sum(_proc_rss(pid) for pid in pids)
        if total:  # 0: the process is gone
            self._samples += 1
            self._peak = max(self._peak, total)

    def stop(self) -> RssSample:
        if self.result is not None:
            return self.result
        if self._thread is None:
            raise RuntimeError("this sampler was never started")
        self._stop.set()
        self._thread.join()
        self._sample([self.pid, *_descendants(self.pid)])
        if self._hwm_reset:
            self._peak = max(self._peak, _peak_rss(self.pid))
        self.result = RssSample(
            baseline=self._baseline,
            peak=self._peak,
            growth=max(0, self._peak - self._baseline),
            samples=self._samples,
            limit=self.limit,
        )
        if self._on_stop is not None:
            with contextlib.suppress(ValueError):
                self._on_stop.remove(self)
        return self.result

    def __enter__(self) -> RssSampler:
        if self._thread is None:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# -- the process ------------------------------------------------------------------------


@dataclass(frozen=True)
class Observation:
    """Everything the server did between a mark and now, and what in it fails a check."""

    output: tuple[OutputLine, ...]
    tracebacks: tuple[PrintedTraceback, ...]
    death: Death | None
    rss: RssSample | None
    #: One line per reason to fail the check (tracebacks left out when they are allowed).
    problems: tuple[str, ...]

    @property
    def unsafe(self) -> bool:
        """The server died, or its memory grew past the limit."""
        return self.death is not None or (self.rss is not None and self.rss.over_limit)


@dataclass(eq=False)
class _Run:
    """One start() of the process, until it is reaped."""

    generation: int
    argv: tuple[str, ...]
    process: subprocess.Popen[bytes]
    first_seq: int
    wake_r: int
    wake_w: int
    pidfd: int | None
    reader: threading.Thread
    started: float
    end_seq: int | None = None  # first output seq after this run (set when it is reaped)
    exit_status: int | None = None  # seen (perhaps not yet reaped)
    stopped: bool = False  # we signalled it: its exit is not a death
    reaped: bool = False
    fds_closed: bool = False
    eof_waited: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid


class ServerUnderTest:
    """A server started from ``command``, supervised: see the module documentation.

    ``command`` is the program and its arguments; ``{host}`` and ``{port}`` in any of
    them are replaced by ``host`` and ``port`` (a free port on ``host`` is picked at the
    first start when ``port`` is 0, and kept for restarts). ``env`` is added to this
    process's environment, with ``PYTHONUNBUFFERED=1`` unless given, so that a Python
    server's prints arrive when printed.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout: float = 10.0,
        stop_timeout: float = 5.0,
        rss_limit: int = DEFAULT_RSS_LIMIT,
        allow_tracebacks: bool = False,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        output_lines: int = 2000,
    ) -> None:
        if isinstance(command, str) or not command:
            raise ValueError("command must be a non-empty list: the program, then its arguments")
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, not {port}")
        if not (start_timeout > 0 and stop_timeout > 0):
            raise ValueError("start_timeout and stop_timeout must be > 0")
        if rss_limit <= 0 or output_lines <= 0:
            raise ValueError("rss_limit and output_lines must be > 0")
        self.command = tuple(command)
        self.host = host
        self.port = port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.rss_limit = rss_limit
        self.allow_tracebacks = allow_tracebacks
        self.cwd = cwd
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self._output = _Output(output_lines)
        self._run: _Run | None = None
        self._runs: dict[int, _Run] = {}
        self._generation = 0
        self._samplers: list[RssSampler] = []

    # -- identity ---------------------------------------------------------------------

    @property
    def argv(self) -> list[str]:
        """The command with its placeholders replaced (the port is 0 until the first start)."""
        port = str(self.port)
        return [arg.replace("{host}", self.host).replace("{port}", port) for arg in self.command]

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    @property
    def pid(self) -> int:
        if self._run is None:
            raise RuntimeError("the server was never started")
        return self._run.pid

    @property
    def alive(self) -> bool:
        run = self._run
        return run is not None and not run.reaped and self._exit_status(run) is None

    @property
    def returncode(self) -> int | None:
        """None while running (or never started); the exit status as ``subprocess`` gives it."""
        return None if self._run is None else self._exit_status(self._run)

    def __repr__(self) -> str:
        state = "running" if self.alive else "not running"
        return f"<ServerUnderTest {shlex.join(self.argv)!r} on {self.host}:{self.port}, {state}>"

    def _describe(self) -> str:
        text = shlex.join(self.argv)
        return f"`{text if len(text) <= 120 else text[:117] + '...'}`"

    # -- life -------------------------------------------------------------------------

    def start(self) -> tuple[str, int]:
        """Start the process and wait until it accepts a connection; return its address."""
        if self._run is not None and not self._run.reaped:
            if self._exit_status(self._run) is None:
                raise RuntimeError("the server is already running (use restart())")
            self._terminate(self._run, self.stop_timeout)  # it died: reap it first
        if self.port == 0:
            self.port = find_free_port(self.host)
        argv = tuple(self.argv)
        wake_r, wake_w = os.pipe()
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # its own process group, so stop() reaches its children
                env=self.env,
                cwd=self.cwd,
            )
        except OSError as exc:
            os.close(wake_r)
            os.close(wake_w)
            raise ServerStartError(
                f"cannot run {self._describe()}: {exc.strerror or exc}",
                command=argv,
                returncode=None,
                stderr_tail=None,
            ) from exc
        assert process.stdout is not None and process.stderr is not None
        pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            pidfd = os.pidfd_open(process.pid)
        fds: dict[Stream, int] = {"stdout": process.stdout.fileno(), "stderr": process.stderr.fileno()}
        reader = threading.Thread(
            target=_pump,
            args=(fds, wake_r, self._output),
            name=f"supervise-output-{process.pid}",
            daemon=True,
        )
        self._generation += 1
        with self._output.cond:
            first_seq = self._output.next_seq
        run = _Run(
            self._generation, argv, process, first_seq, wake_r, wake_w, pidfd, reader, time.monotonic()
        )
        reader.start()
        self._run = run
        self._runs[run.generation] = run
        for old in sorted(self._runs)[:-_KEPT_RUNS]:
            del self._runs[old]
        log.info("started %s: pid %d, waiting for %s:%d", self._describe(), run.pid, self.host, self.port)
        self._wait_ready(run)
        log.info("server pid %d accepts connections on %s:%d", run.pid, self.host, self.port)
        return self.address

    def _wait_ready(self, run: _Run) -> None:
        deadline = run.started + self.start_timeout
        family, sockaddr = _resolve(self.host, self.port)
        where = f"{self.host}:{self.port}"
        while True:
            connect_timeout = max(0.05, min(1.0, deadline - time.monotonic()))
            # (checked again after connecting: the connection may have reached someone else)
            if (
                self._exit_status(run) is None
                and _can_connect(family, sockaddr, connect_timeout)
                and self._exit_status(run) is None
            ):
                return
            status = self._exit_status(run)
            if status is not None:
                self._fail_start(
                    run,
                    f"{self._describe()} {describe_status(status)} before accepting connections on {where}",
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._fail_start(
                    run,
                    f"{self._describe()} accepted no connection on {where} within {self.start_timeout:g} s "
                    "(it was still running, and has been stopped)",
                )
            self._wait_exit(run, min(_POLL, remaining))

    def _fail_start(self, run: _Run, headline: str) -> None:
        status = self._exit_status(run)
        self._terminate(run, min(self.stop_timeout, 2.0))
        stderr = self._output.since(run.first_seq, run.end_seq, ("stderr",))
        tail = [line.text for line in stderr[-TAIL_LINES:]]
        log.info("%s", headline)
        raise ServerStartError(headline, command=run.argv, returncode=status, stderr_tail=tail)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM to the process group, wait up to ``timeout`` (``stop_timeout``), then SIGKILL.

        Returns the exit status (None if never started). Stops running samplers, joins
        the reader thread and closes the pipes. Calling it again does nothing.
        """
        for sampler in list(self._samplers):
            sampler.stop()
        run = self._run
        if run is None:
            return None
        if not run.reaped:
            self._terminate(run, self.stop_timeout if timeout is None else timeout)
        return run.exit_status

    def restart(self) -> tuple[str, int]:
        """Stop (or reap) the process, wait until its port is free again (bounded), start it again."""
        self.stop()
        if self.port:
            self._wait_port_free(self.start_timeout)
        return self.start()

    def __enter__(self) -> ServerUnderTest:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _terminate(self, run: _Run, timeout: float) -> None:
        if self._exit_status(run) is None:
            run.stopped = True
            self._signal_group(run, signal.SIGTERM)
            if not self._wait_exit(run, timeout):
                log.warning("server pid %d ignored SIGTERM for %g s: killing it", run.pid, timeout)
                self._signal_group(run, signal.SIGKILL)
                self._wait_exit(run, timeout)
        self._reap(run)

    def _signal_group(self, run: _Run, signum: signal.Signals) -> None:
        if run.reaped:  # its process group id may belong to someone else by now
            return
        try:
            os.killpg(run.pid, signum)
        except ProcessLookupError:
            pass
        except PermissionError as exc:
            log.warning("cannot signal process group %d: %s", run.pid, exc)

    def _reap(self, run: _Run) -> None:
        # The leader has exited but is not reaped yet, so its group id is still ours: take
        # down whatever it left behind (workers, a shell's child) before reaping it.
        self._signal_group(run, signal.SIGKILL)
        try:
            run.process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired as exc:
            raise SupervisorError(
                f"server pid {run.pid} survived SIGKILL for {self.stop_timeout:g} s"
            ) from exc
        run.reaped = True
        run.exit_status = run.process.returncode
        self._close_pipes(run)
        with self._output.cond:
            run.end_seq = self._output.next_seq
        log.info("server pid %d %s", run.pid, describe_status(run.exit_status))

    def _close_pipes(self, run: _Run) -> None:
        if run.fds_closed:
            return
        run.reader.join(_EOF_WAIT)
        if run.reader.is_alive():  # something outside the group still holds the pipes open
            log.warning("server pid %d: its output pipes are still open; no longer reading them", run.pid)
            os.write(run.wake_w, b"x")
            run.reader.join(_EOF_WAIT)
        if run.reader.is_alive():
            return  # the reader still uses the descriptors: leave them rather than close them under it
        for pipe in (run.process.stdout, run.process.stderr):
            if pipe is not None:
                pipe.close()
        for fd in (run.wake_r, run.wake_w, run.pidfd):
            if fd is not None:
                os.close(fd)
        run.pidfd = None
        run.fds_closed = True

    def _exit_status(self, run: _Run) -> int | None:
        """The exit status once the process has exited, without reaping it (so its group id stays ours)."""
        if run.exit_status is not None:
            return run.exit_status
        if run.reaped:
            return run.process.returncode
        try:
            info = os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped behind our back
            run.exit_status = run.process.poll()
            if run.exit_status is None:
                run.exit_status = 255
            return run.exit_status
        if info is None:
            return None
        run.exit_status = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
        return run.exit_status

    def _wait_exit(self, run: _Run, timeout: float) -> bool:
        """Wait (bounded) until the process exits; True if it has."""
        deadline = time.monotonic() + timeout
        while self._exit_status(run) is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if run.pidfd is not None:
                select.select([run.pidfd], [], [], remaining)  # readable once it exits
            else:
                time.sleep(min(0.01, remaining))
        return True

    def _wait_port_free(self, timeout: float) -> None:
        family, sockaddr = _resolve(self.host, self.port)
        deadline = time.monotonic() + timeout
        while True:
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind(sockaddr)
                    return
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"port {self.port} on {self.host} is still in use {timeout:g} s after the server stopped",
                    command=self.argv,
                    returncode=None,
                    stderr_tail=None,
                )
            time.sleep(_POLL)

    # -- watching ---------------------------------------------------------------------

    def settle(self, quiet: float = 0.0, timeout: float = 1.0) -> bool:
        """Wait until what the server has written is read, and it has been silent ``quiet`` s.

        Bounded by ``timeout``; returns False if output was still arriving then. With
        ``quiet=0`` this returns at once when the pipes are already drained.
        """
        output = self._output
        run = self._run
        deadline = time.monotonic() + timeout
        with output.cond:
            while True:
                now = time.monotonic()
                drained = output.reading == 0 and output.partials == 0
                if drained and run is not None and not run.fds_closed and run.reader.is_alive():
                    drained = all(_unread_bytes(fd) == 0 for fd in _pipe_fds(run))
                quiet_left = output.last_data + quiet - now
                if drained and quiet_left <= 0:
                    return True
                remaining = deadline - now
                if remaining <= 0:
                    return False
                output.cond.wait(min(remaining, quiet_left if drained else _POLL))

    def mark(self) -> Mark:
        """A point to compare with later: call it before a check.

        Output already written by the server is read first, so it is not counted as the check's.
        """
        self.settle(quiet=0.0, timeout=0.5)
        run = self._run
        alive = run is not None and not run.reaped and self._exit_status(run) is None
        with self._output.cond:
            seq = self._output.next_seq
        return Mark(seq, run.generation if run is not None else 0, alive, time.monotonic())

    def since(self, mark: Mark) -> list[OutputLine]:
        """Lines printed (stdout and stderr, in arrival order) since ``mark``, within the buffers' bound."""
        return self._output.since(mark.seq)

    def tracebacks_since(self, mark: Mark) -> list[PrintedTraceback]:
        """Python tracebacks printed since ``mark`` (each stream parsed on its own)."""
        return _tracebacks(self.since(mark))

    def died_since(self, mark: Mark, *, wait: float = 0.0) -> Death | None:
        """How the process that was running at ``mark`` died, if it exited on its own since.

        ``wait`` gives a process that is on its way out (its sockets already closed)
        that long to finish exiting. None if it still runs, was not running at the mark,
        or was stopped by :meth:`stop`.
        """
        run = self._runs.get(mark.generation)
        if run is None or not mark.alive:
            return None
        status = self._exit_status(run)
        if status is None and wait > 0 and not run.reaped:
            self._wait_exit(run, wait)
            status = self._exit_status(run)
        if status is None or run.stopped:
            return None
        if not run.fds_closed and not run.eof_waited:
            run.reader.join(_EOF_WAIT)  # the output pipes close with the process: its last words are in
            run.eof_waited = True
        lines = self._output.since(run.first_seq, run.end_seq)
        tail = tuple(line.text for line in lines if line.stream == "stderr")[-TAIL_LINES:]
        after_mark = [line for line in lines if line.seq >= mark.seq]
        return Death(status, tail, tuple(_tracebacks(after_mark)))

    def observe(
        self, mark: Mark, *, rss: RssSample | None = None, quiet: float = 0.02, wait: float = 0.0
    ) -> Observation:
        """Everything since ``mark`` at once, with the reasons it fails a check.

        Waits for the server's output to settle (``quiet`` seconds of silence, bounded),
        then collects output, tracebacks, a death (see :meth:`died_since`) and the RSS
        sample if one is given. Tracebacks are a problem unless ``allow_tracebacks``.
        """
        self.settle(quiet=quiet, timeout=max(0.1, 5 * quiet))
        death = self.died_since(mark, wait=wait)
        output = tuple(self.since(mark))
        tracebacks = tuple(_tracebacks(output))
        problems: list[str] = []
        if death is not None:
            problems.append(f"the server {death.summary}")
        if not self.allow_tracebacks:
            tail = death.tracebacks[-1:] if death is not None else ()
            problems.extend(f"the server {tb.summary}" for tb in tracebacks if tb not in tail)
        if rss is not None and rss.over_limit:
            problems.append(f"the server's {rss.summary}")
        return Observation(output, tracebacks, death, rss, tuple(problems))

    # -- memory -----------------------------------------------------------------------

    def rss(self) -> int:
        """Resident set size in bytes of the process and its descendants (0 when not running)."""
        run = self._run
        if run is None or run.reaped:
            return 0
        return tree_rss(run.pid)

    def rss_sampler(self, interval: float = 0.02) -> RssSampler:
        """A sampler (not started) of this process's RSS, with this server's ``rss_limit``.

        Use it as a context manager around a check; :meth:`stop` stops it too.
        """
        if not self.alive:
            raise RuntimeError("the server is not running")
        sampler = RssSampler(self.pid, interval=interval, limit=self.rss_limit)
        sampler._on_stop = self._samplers
        self._samplers.append(sampler)
        return sampler


def _pipe_fds(run: _Run) -> list[int]:
    return [pipe.fileno() for pipe in (run.process.stdout, run.process.stderr) if pipe is not None]


_SockAddr = tuple[str, int] | tuple[str, int, int, int]


def _resolve(host: str, port: int) -> tuple[socket.AddressFamily, _SockAddr]:
    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    if isinstance(sockaddr[0], int):  # (only for AF_INET6 without IPv6 support in Python)
        raise ValueError(f"cannot use host {host!r}")
    return family, (sockaddr[0], sockaddr[1], *sockaddr[2:])


def _can_connect(family: socket.AddressFamily, sockaddr: _SockAddr, timeout: float) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError:
            return False
    return True


def find_free_port(host: str = "127.0.0.1") -> int:
    """A port on ``host`` that nothing listens on right now (bind port 0, read it, close)."""
    family, sockaddr = _resolve(host, 0)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind(sockaddr)
        port: int = sock.getsockname()[1]
    return port
