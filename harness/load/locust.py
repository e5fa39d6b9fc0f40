"""A locustfile for lpjson servers: Locust users that speak lpjson over a TCP socket.

Run it with Locust (``pip install 'lpjson-harness[locust]'``), the target given as
``--host tcp://HOST:PORT``; ``harness locust path`` prints this file's path::

    locust -f $(harness locust path) --host tcp://127.0.0.1:65432 --headless -u 50 -r 50 -t 30s
    locust -f $(harness locust path) --master --host tcp://server:65432     # web UI on :8089
    locust -f $(harness locust path) --worker --master-host MASTER          # on each load machine

Every answer is reported through Locust's ``request`` event (``request_type``, ``name``,
``response_time`` in ms, ``response_length``, ``exception``), so the web UI, ``--csv``,
``--json`` and master/worker runs work as for HTTP. The user classes:

- :class:`LpjsonUser` (the default run): one long-lived connection; each task writes
  ``--lpjson-depth`` requests (default 10) in one write, the guide's searches
  (``name="search"``) or its binary request (``name="binary"``), and reads every answer.
  ``response_time`` runs from the write to the ``recv`` that completed the answer. An
  error message from the server (docs/PROTOCOL.md#s6), a malformed answer, a reset, a
  close or ``--lpjson-timeout`` seconds without an answer is a failure.
- The hostile kinds, each reporting whether the server defended itself (a failure when
  it did not; docs/load.md#hardening): :class:`SlowSender` (one byte every
  ``--lpjson-slow-interval`` s: success when the server cuts it off, failure when still
  open after ``--lpjson-slow-deadline`` s), :class:`NeverReader` (large requests, never
  reads: success when the server stops reading it or closes it, failure after
  ``NEVER_READER_BOUND`` bytes taken), :class:`HugeLength` (declares 2**40 bytes of
  content: success when refused with an error message within ``--lpjson-timeout`` s).

Without user class names on the command line only :class:`LpjsonUser` runs; name the
classes to mix them by weight, e.g. ``locust -f ... LpjsonUser SlowSender NeverReader
HugeLength`` (weights 2:4:1:1, the proportions of ``harness.load.HostileMix``).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any, ClassVar
from urllib.parse import urlsplit

from harness._extras import importing

with importing("the locustfile (harness locust path)", "locust"):
    from locust import User, constant, events, task

from harness.errors import ProtocolError
from harness.frames import DEFAULT_MAX_CONTENT_LENGTH, Frame, FrameReader, frame
from harness.load.answers import Verdicts, error_code, error_kind
from harness.load.config import default_requests
from harness.message import Message

__all__ = [
    "NEVER_READER_BOUND",
    "HugeLength",
    "LpjsonUser",
    "NeverReader",
    "ServerFailure",
    "SlowSender",
    "parse_host",
]

log = logging.getLogger(__name__)

#: A never-reader that got this many bytes taken without the server pushing back is a failure.
NEVER_READER_BOUND = 64 * 1024 * 1024
#: Size of a never-reader's search value (the answer echoes it).
NEVER_READER_VALUE = 256 * 1024
#: The content length a huge-length user declares.
HUGE_LENGTH = 1 << 40

_DEFAULTS: dict[str, Any] = {
    "lpjson_depth": 10,
    "lpjson_timeout": 5.0,
    "lpjson_slow_interval": 0.5,
    "lpjson_slow_deadline": 60.0,
    "lpjson_hold": 10.0,
}


class ServerFailure(Exception):
    """What a request's failure is listed under in Locust's failures (the text is the kind)."""


def parse_host(host: str | None) -> tuple[str, int]:
    """``("HOST", PORT)`` from ``tcp://HOST:PORT`` (``tcp://[::1]:PORT`` for IPv6); ValueError else."""
    if not host:
        raise ValueError("no target: give --host tcp://HOST:PORT")
    parts = urlsplit(host)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or port is None:
        raise ValueError(f"--host {host!r}: expected tcp://HOST:PORT")
    return parts.hostname, port


def _positive_int(text: str) -> int:
    import argparse

    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    import argparse

    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _add_arguments(parser: Any, **_: Any) -> None:
    group = parser.add_argument_group("lpjson (harness)")
    group.add_argument(
        "--lpjson-depth",
        type=_positive_int,
        default=_DEFAULTS["lpjson_depth"],
        help="requests written at once by each LpjsonUser task (default 10)",
    )
    group.add_argument(
        "--lpjson-timeout",
        type=_positive_float,
        default=_DEFAULTS["lpjson_timeout"],
        help="seconds to wait for an answer or a refusal (default 5)",
    )
    group.add_argument(
        "--lpjson-slow-interval",
        type=_positive_float,
        default=_DEFAULTS["lpjson_slow_interval"],
        help="SlowSender: seconds between bytes (default 0.5)",
    )
    group.add_argument(
        "--lpjson-slow-deadline",
        type=_positive_float,
        default=_DEFAULTS["lpjson_slow_deadline"],
        help="SlowSender: a failure when not cut off after this many seconds (default 60)",
    )
    group.add_argument(
        "--lpjson-hold",
        type=_positive_float,
        default=_DEFAULTS["lpjson_hold"],
        help="NeverReader: seconds a stalled connection is held open (default 10)",
    )


def _default_to_well_behaved(environment: Any, **_: Any) -> None:
    """No user classes named: run the well-behaved ones only (workers keep all: the master decides)."""
    options = environment.parsed_options
    if options is None or getattr(options, "worker", False):
        return
    if getattr(options, "user_classes", None) or getattr(options, "class_picker", False):
        return
    kept = [cls for cls in environment.user_classes if not getattr(cls, "hostile", False)]
    if kept and len(kept) < len(environment.user_classes):
        environment.user_classes[:] = kept


class _WorkerTally:
    """Requests reported by each worker, logged by the master when it quits.

    Locust's master aggregates every worker's statistics into one table; this line says
    how the load was spread (a worker that never reached the server shows up as 0).
    """

    def __init__(self) -> None:
        self.local = 0  # on a worker: requests since its last report to the master
        self.by_worker: dict[str, int] = {}  # on the master

    def on_request(self, **_: Any) -> None:
        self.local += 1

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        data["lpjson_requests"], self.local = self.local, 0

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_: Any) -> None:
        self.by_worker[client_id] = self.by_worker.get(client_id, 0) + int(data.get("lpjson_requests", 0))

    def on_quit(self, **_: Any) -> None:
        if self.by_worker:
            spread = ", ".join(f"{worker} {count}" for worker, count in sorted(self.by_worker.items()))
            log.info("lpjson requests by worker: %s", spread)


_tally = _WorkerTally()
_events: Any = events  # locust's event hooks are untyped
_events.init_command_line_parser.add_listener(_add_arguments)
_events.init.add_listener(_default_to_well_behaved)
_events.request.add_listener(_tally.on_request)
_events.report_to_master.add_listener(_tally.on_report_to_master)
_events.worker_report.add_listener(_tally.on_worker_report)
_events.quit.add_listener(_tally.on_quit)


class _SocketUser(User):
    """A user with one TCP connection to ``--host tcp://HOST:PORT`` and a request-event reporter."""

    abstract = True
    hostile: ClassVar[bool] = False
    request_type: ClassVar[str] = "lpjson"

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self.sock: socket.socket | None = None

    def option(self, name: str) -> Any:
        options = self.environment.parsed_options
        return getattr(options, name, _DEFAULTS[name]) if options is not None else _DEFAULTS[name]

    def report(
        self,
        name: str,
        started: float,
        length: int,
        exception: BaseException | None = None,
        *,
        ended: float | None = None,
    ) -> None:
        elapsed = ((time.perf_counter() if ended is None else ended) - started) * 1000.0
        self.environment.events.request.fire(
            request_type=self.request_type,
            name=name,
            response_time=elapsed,
            response_length=length,
            exception=exception,
            context={},
        )

    def connect(self) -> socket.socket | None:
        """A new connection, or ``None`` after reporting why there is none (then wait a moment)."""
        started = time.perf_counter()
        try:
            host, port = parse_host(self.host)
            sock = socket.create_connection((host, port), timeout=self.option("lpjson_timeout"))
        except (OSError, ValueError) as exc:
            reason = str(exc) if isinstance(exc, ValueError) else error_kind(exc)
            self.report("connect", started, 0, ServerFailure(reason))
            time.sleep(1.0)  # gevent's sleep under Locust: no tight loop of failures
            return None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def disconnect(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def on_stop(self) -> None:
        self.disconnect()


class LpjsonUser(_SocketUser):
    """The well-behaved client: pipelined searches and binary requests on one connection."""

    weight = 2
    wait_time = constant(0)

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        requests = default_requests()
        self.searches, self.binary = requests[:-1], requests[-1]
        self.turn = 0
        self.reader = FrameReader(DEFAULT_MAX_CONTENT_LENGTH)
        self.verdicts = Verdicts()

    @task(4)
    def search(self) -> None:
        depth = self.option("lpjson_depth")
        batch = [self.searches[(self.turn + i) % len(self.searches)] for i in range(depth)]
        self.turn += depth
        self.exchange("search", batch)

    @task(1)
    def binary_request(self) -> None:
        self.exchange("binary", [self.binary] * self.option("lpjson_depth"))

    def exchange(self, name: str, batch: list[bytes]) -> None:
        """Write ``batch`` in one write, read an answer to each, report each answer."""
        if self.sock is None:
            self.sock = self.connect()
            if self.sock is None:
                return
            self.reader = FrameReader(DEFAULT_MAX_CONTENT_LENGTH)
        sock = self.sock
        answered = 0
        started = time.perf_counter()
        try:
            sock.sendall(b"".join(batch))
            while answered < len(batch):
                data = sock.recv(262144)
                if not data:
                    raise ServerFailure("closed-by-server")
                now = time.perf_counter()
                frames = self.reader.feed(data)
                if answered + len(frames) > len(batch):
                    raise ServerFailure("more answers than requests")
                for i, (header, content, offset) in enumerate(frames):
                    end = frames[i + 1].offset if i + 1 < len(frames) else self.reader.offset
                    verdict = self.verdicts(header, content)
                    failure = ServerFailure(verdict) if verdict is not None else None
                    self.report(name, started, end - offset, failure, ended=now)
                answered += len(frames)
        except (OSError, ProtocolError, ServerFailure) as exc:
            failure = exc if isinstance(exc, ServerFailure) else ServerFailure(error_kind(exc))
            for _ in range(len(batch) - answered):
                self.report(name, started, 0, failure)
            self.disconnect()


def _first_error_code(data: bytes) -> str | None:
    """The ``error`` code of the first error message in ``data``, if there is one."""
    try:
        frames: list[Frame] = FrameReader(DEFAULT_MAX_CONTENT_LENGTH).feed(data)
    except ProtocolError:
        return None
    for header, content, _ in frames:
        code = error_code(header, content)
        if code is not None:
            return code
    return None


def _read_until_closed(sock: socket.socket, deadline: float) -> tuple[bytes, bool]:
    """What the peer sends until it closes (``True``) or ``deadline`` passes (``False``)."""
    data = bytearray()
    while (left := deadline - time.perf_counter()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


class SlowSender(_SocketUser):
    """Trickles a valid request one byte at a time: the server must cut it off."""

    hostile = True
    request_type = "slow-sender"
    weight = 4
    wait_time = constant(0)

    @task
    def trickle(self) -> None:
        sock = self.connect()
        if sock is None:
            return
        self.sock = sock
        request = default_requests()[0]
        interval = self.option("lpjson_slow_interval")
        opened = time.perf_counter()
        deadline = opened + self.option("lpjson_slow_deadline")
        received = 0
        closed = False
        i = 0
        while not closed and time.perf_counter() < deadline:
            try:
                sock.send(request[i : i + 1])
            except OSError:
                closed = True
                break
            i = (i + 1) % len(request)
            data, closed = _read_until_closed(sock, time.perf_counter() + interval)
            received += len(data)
        failure = None if closed else ServerFailure(f"still open after {deadline - opened:g} s")
        self.report("cut off", opened, received, failure)
        self.disconnect()


class NeverReader(_SocketUser):
    """Sends large requests and never reads: the server must stop reading it (or close it)."""

    hostile = True
    request_type = "never-reader"
    weight = 1
    wait_time = constant(0)

    @task
    def flood(self) -> None:
        sock = self.connect()
        if sock is None:
            return
        self.sock = sock
        big = Message.from_json({"action": "search", "value": "x" * NEVER_READER_VALUE}).encode()
        sock.settimeout(1.0)  # a send blocked this long: the server has stopped reading us
        started = time.perf_counter()
        sent = 0
        outcome: str | None = None
        while sent < NEVER_READER_BOUND:
            try:
                sock.sendall(big)
            except TimeoutError:
                outcome = "stalled"
                break
            except OSError:
                outcome = "closed by server"
                break
            sent += len(big)
        if outcome is None:
            failure = ServerFailure(f"took {sent} bytes without pushing back")
            self.report("pushed back", started, sent, failure)
        else:
            self.report("pushed back", started, sent)
            if outcome == "stalled":
                time.sleep(self.option("lpjson_hold"))  # hold the unread connection open
        self.disconnect()


class HugeLength(_SocketUser):
    """Declares 2**40 bytes of content: the server must refuse at once with an error message."""

    hostile = True
    request_type = "huge-length"
    weight = 1
    wait_time = constant(0.5)

    @task
    def declare(self) -> None:
        sock = self.connect()
        if sock is None:
            return
        self.sock = sock
        header = (
            f'{{"byteorder": "little", "content-type": "binary/custom-client-binary-type", '
            f'"content-encoding": "binary", "content-length": {HUGE_LENGTH}}}'
        ).encode()
        started = time.perf_counter()
        try:
            sock.sendall(frame(header))
            sock.sendall(b"\x00" * 65536)  # the start of the "content"
        except OSError:
            pass  # refused already: read what it said
        data, closed = _read_until_closed(sock, started + self.option("lpjson_timeout"))
        code = _first_error_code(data)
        if not closed:
            failure: ServerFailure | None = ServerFailure("not refused")
        elif code is None:
            failure = ServerFailure("closed without an error message")
        else:
            failure = None
        self.report("refused", started, len(data), failure)
        self.disconnect()
