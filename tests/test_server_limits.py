"""Limits of the reference server: idle timeout, backpressure, connection limit, fd exhaustion, shutdown."""

from __future__ import annotations

import errno
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from server_helpers import (
    connect,
    expected_response,
    read_messages,
    search,
    wait_for,
    wait_until_closed,
    with_fd_limit,
)

from harness import Decoder, ReferenceServer
from harness.apps import search_app

RING = search("ring")


def test_server_idle_timeout_closes_a_silent_connection() -> None:
    with ReferenceServer(idle_timeout=0.5) as srv, connect(srv.address) as sock:
        started = time.monotonic()
        data = wait_until_closed(sock, timeout=5)
        elapsed = time.monotonic() - started
        (message,) = Decoder().feed(data)
        assert message.json()["error"] == "idle-timeout"
        assert 0.4 <= elapsed < 3.0
        wait_for(lambda: srv.stats.idle_timeouts == 1)


def test_server_idle_timeout_cuts_off_a_slow_sender_that_never_completes_a_request() -> None:
    request = search("morpheus").encode()
    with ReferenceServer(idle_timeout=0.5) as srv, connect(srv.address) as slow, connect(srv.address) as busy:
        started = time.monotonic()
        closed_after = None
        for i in range(len(request) - 1):  # a byte every 0.1 s: activity, but never a whole request
            try:
                slow.sendall(request[i : i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed_after = time.monotonic() - started
                break
            readable, _, _ = select.select([slow], [], [], 0.1)
            if readable:
                wait_until_closed(slow, timeout=5)
                closed_after = time.monotonic() - started
                break
            # meanwhile, a well-behaved connection is served normally
            busy.sendall(RING.encode())
            assert read_messages(busy, 1).messages == [search_app(RING)]
        assert closed_after is not None, "the slow sender outlived the idle timeout"
        assert 0.4 <= closed_after < 3.0
        assert srv.stats.idle_timeouts >= 1


def test_server_idle_timeout_spares_a_connection_that_keeps_making_requests() -> None:
    with ReferenceServer(idle_timeout=0.6) as srv, connect(srv.address) as sock:
        started = time.monotonic()
        while time.monotonic() - started < 2.0:
            sock.sendall(RING.encode())
            assert read_messages(sock, 1).messages == [search_app(RING)]
            time.sleep(0.2)  # pacing: well inside the timeout
        assert srv.stats.idle_timeouts == 0


def _send_without_reading(sock: socket.socket, payload: bytes, stall: float = 1.0) -> int:
    """Send as much of ``payload`` as the peer accepts until no progress for ``stall`` seconds."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(payload):
            _, writable, _ = select.select([], [sock], [], stall)
            if not writable:
                break
            try:
                sent += sock.send(payload[sent : sent + 65536])
            except BlockingIOError:
                continue
    finally:
        sock.setblocking(True)
        sock.settimeout(10)
    return sent


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_server_backpressure_bounds_memory_for_a_client_that_never_reads(use_uvloop: bool) -> None:
    limit = 64 * 1024
    # ~21 MB of requests, more than the kernel's socket buffers on both sides can absorb.
    requests = [search(str(i)) for i in range(100)] * 1500
    payload = b"".join(m.encode() for m in requests)
    with ReferenceServer(idle_timeout=30, max_pending_output=limit, use_uvloop=use_uvloop) as srv:
        sock = connect(srv.address)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        try:
            sent = _send_without_reading(sock, payload)
            assert sent < len(payload), "the server kept reading a client that never reads"
            (snap,) = srv.snapshot()
            assert snap.reading_paused
            # unsent output: at most the limit plus one batch (itself bounded by the limit)
            assert snap.unsent_output <= 2 * limit + 4096
            assert snap.pending_requests * 150 <= 256 * 1024 + limit
            # The client starts reading: every complete request is answered, in order.
            complete = len(Decoder().feed(payload[:sent]))
            reading = read_messages(sock, complete, timeout=30)
            answers = [expected_response(m) for m in requests[:100]] * 1500
            assert reading.raw == b"".join(answers[:complete])
            # ... and the connection is usable again: finish the cut request, send one more.
            boundary = len(b"".join(m.encode() for m in requests[: complete + 1]))
            sock.sendall(payload[sent:boundary] + RING.encode())
            rest = read_messages(sock, 2, timeout=10)
            assert [m.encode() for m in rest.messages] == [answers[complete], expected_response(RING)]
        finally:
            sock.close()


def test_server_max_connections_turns_away_the_extra_one_without_hurting_the_others() -> None:
    with ReferenceServer(max_connections=3) as srv:
        socks = [connect(srv.address) for _ in range(3)]
        try:
            for sock in socks:
                sock.sendall(RING.encode())
                assert read_messages(sock, 1).messages == [search_app(RING)]
            with connect(srv.address) as extra:
                extra.sendall(RING.encode())
                reading = read_messages(extra, None)
                assert reading.closed and not reading.reset
                (refusal,) = reading.messages
                assert refusal.json()["error"] == "too-many-connections"
            for sock in socks:
                sock.sendall(RING.encode())
                assert read_messages(sock, 1).messages == [search_app(RING)]
            socks.pop().close()
            wait_for(lambda: srv.open_connections == 2)
            with connect(srv.address) as again:
                again.sendall(RING.encode())
                assert read_messages(again, 1).messages == [search_app(RING)]
            assert srv.stats.rejected == 1
        finally:
            for sock in socks:
                sock.close()


@pytest.mark.parametrize("use_uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_server_stop_closes_a_rejected_connection_that_is_still_lingering(use_uvloop: bool) -> None:
    srv = ReferenceServer(max_connections=1, use_uvloop=use_uvloop)
    srv.start()
    try:
        with connect(srv.address), connect(srv.address) as extra:  # the first one fills the server
            wait_for(lambda: srv.open_connections == 1 and srv.stats.rejected == 1)
            reading = read_messages(extra, None)
            assert reading.closed and reading.messages[0].json()["error"] == "too-many-connections"
            srv.stop()
            # We read the server's EOF; its socket must now be closed too: a byte sent to it
            # comes back as a reset (EPIPE in our CLOSE_WAIT), not taken in by a leaked socket.
            extra.sendall(b"x")
            reset = (errno.ECONNRESET, errno.EPIPE)
            wait_for(lambda: extra.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) in reset)
    finally:
        srv.stop()


def test_server_stop_flushes_the_responses_already_produced() -> None:
    requests = [search(str(i)) for i in range(3000)]
    srv = ReferenceServer()
    srv.start()
    with connect(srv.address) as sock:
        sock.sendall(b"".join(m.encode() for m in requests))
        wait_for(lambda: srv.stats.requests == len(requests))
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        reading = read_messages(sock, None, timeout=10)
        stopper.join(10)
    assert not stopper.is_alive()
    assert reading.closed and len(reading.messages) == len(requests)
    assert reading.raw == b"".join(expected_response(m) for m in requests)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_server_out_of_file_descriptors_keeps_serving_and_recovers(loop: str) -> None:
    """With RLIMIT_NOFILE at 40, 60 clients exhaust the server's descriptors; it logs one
    warning, keeps serving the open connections, and accepts again once some close."""
    serve = [sys.executable, "-m", "harness", "serve", "--port", "0", "--loop", loop]
    serve += ["--log-level", "warning"]
    proc = subprocess.Popen(
        with_fd_limit(40, serve),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        match = re.fullmatch(r"Listening on 127\.0\.0\.1:(\d+)\n", line)
        assert match, line
        address = ("127.0.0.1", int(match.group(1)))
        keeper = connect(address)
        keeper.sendall(RING.encode())
        assert read_messages(keeper, 1).messages == [search_app(RING)]
        crowd = [connect(address) for _ in range(60)]  # the kernel completes these in the backlog
        for sock in crowd:
            sock.sendall(RING.encode())
        # Some get served, the rest wait in the backlog while accept() fails with EMFILE.
        waiting = set(crowd)
        deadline = time.monotonic() + 1.5
        while waiting and time.monotonic() < deadline:
            readable, _, _ = select.select(list(waiting), [], [], 0.2)
            for sock in readable:
                assert read_messages(sock, 1).messages == [search_app(RING)]
                waiting.discard(sock)
        assert 0 < len(waiting) < 60
        keeper.sendall(RING.encode())
        assert read_messages(keeper, 1).messages == [search_app(RING)]
        served = [sock for sock in crowd if sock not in waiting]
        for sock in served:
            sock.close()
        # Service resumes: the connections that waited are answered, and fresh ones too.
        # (in accept order, which only the server knows: take whichever is answered next)
        deadline = time.monotonic() + 10
        while waiting and time.monotonic() < deadline:
            readable, _, _ = select.select(list(waiting), [], [], 0.5)
            for sock in readable:
                assert read_messages(sock, 1).messages == [search_app(RING)]
                sock.close()
                waiting.discard(sock)
        assert not waiting, f"{len(waiting)} connections never served"
        with connect(address) as fresh:
            fresh.sendall(RING.encode())
            assert read_messages(fresh, 1).messages == [search_app(RING)]
        keeper.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        assert "accept() failed: [Errno 24] Too many open files" in log
        assert log.count("accept() failed") <= 3, log  # one warning per episode, not a storm
        assert "Traceback" not in log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_server_rejects_bad_configuration() -> None:
    with pytest.raises(ValueError):
        ReferenceServer(max_connections=0)
    with pytest.raises(ValueError):
        ReferenceServer(idle_timeout=-1)
    with pytest.raises(ValueError, match="idle_timeout"):
        ReferenceServer(idle_timeout=float("nan"))
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ReferenceServer(shutdown_timeout=-1)
    with pytest.raises(ValueError, match="shutdown_timeout"):
        ReferenceServer(shutdown_timeout=float("nan"))
    with pytest.raises(ValueError):
        ReferenceServer(max_pending_output=0)


def test_server_start_failure_is_raised_in_the_caller() -> None:
    with ReferenceServer() as first:
        second = ReferenceServer(port=first.address[1])
        with pytest.raises(OSError):
            second.start()
