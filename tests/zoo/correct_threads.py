"""A thread per connection, blocking sockets, one receive buffer per connection.

Correct. Each thread appends what ``recv`` returns to a buffer and answers every
whole message in it, in order; a blocking ``sendall`` is the backpressure (the
thread stops reading while the peer does not read). The socket timeout is the
time left before the idle deadline, so a peer trickling one byte at a time is cut
off too. Framing and header errors get the error message, a shutdown of our side,
and the connection closes once the peer has closed (at most 2 s later).

Usage: python correct_threads.py HOST PORT
"""

import contextlib
import socket
import struct
import threading
import time
import traceback

import zoolib

active = 0
active_lock = threading.Lock()


def take_messages(buf):
    """Yield (header, content) for each whole message at the front of ``buf``, consuming it."""
    while len(buf) >= 2:
        hdrlen = struct.unpack(">H", buf[:2])[0]
        if hdrlen == 0:
            raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
        if len(buf) < 2 + hdrlen:
            return
        header, length = zoolib.parse_header(buf[2 : 2 + hdrlen])
        if len(buf) < 2 + hdrlen + length:
            return
        content = bytes(buf[2 + hdrlen : 2 + hdrlen + length])
        del buf[: 2 + hdrlen + length]
        yield header, content


def respond(header, content):
    try:
        return zoolib.answer(header, content)
    except Exception:
        traceback.print_exc()
        return zoolib.error_message("internal-error", "the application failed")


def send_error_and_close(conn, code, detail):
    """The error message, our FIN, then discard input until the peer closes (bounded)."""
    try:
        conn.settimeout(zoolib.LINGER)
        conn.sendall(zoolib.error_message(code, detail))
        conn.shutdown(socket.SHUT_WR)
        end = time.monotonic() + zoolib.LINGER
        while time.monotonic() < end:
            conn.settimeout(max(0.01, end - time.monotonic()))
            if not conn.recv(zoolib.RECV_SIZE):
                break
    except OSError:
        pass


def serve_connection(conn):
    buf = bytearray()
    deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            send_error_and_close(conn, "idle-timeout", f"no complete request in {zoolib.IDLE_TIMEOUT:g} s")
            return
        conn.settimeout(left)
        try:
            data = conn.recv(zoolib.RECV_SIZE)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
        out = bytearray()
        try:
            for header, content in take_messages(buf):
                out += respond(header, content)
        except zoolib.ProtocolViolation as exc:
            conn.settimeout(zoolib.IDLE_TIMEOUT)
            conn.sendall(out)
            send_error_and_close(conn, exc.code, exc.detail)
            return
        if out:
            # Blocks while the peer does not read: this thread stops reading meanwhile.
            conn.settimeout(zoolib.IDLE_TIMEOUT)
            conn.sendall(out)
            deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
    # The peer shut down its side: every whole request is answered already.
    if buf:
        send_error_and_close(conn, "incomplete-message", f"stream ended inside a message ({len(buf)} bytes)")


def handle(conn, addr):
    global active
    try:
        serve_connection(conn)
    except TimeoutError:
        # Answers unsent for the idle timeout: the peer does not read. Abort (RST).
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as exc:
        print(f"{addr}: {exc}")
    finally:
        conn.close()
        with active_lock:
            active -= 1


def main():
    global active
    host, port = zoolib.parse_args()
    lsock = zoolib.make_listener(host, port)
    with lsock:
        while True:
            conn, addr = lsock.accept()
            with active_lock:
                full = active >= zoolib.MAX_CONNECTIONS
                if not full:
                    active += 1
            if full:
                with conn:
                    conn.settimeout(1.0)
                    with contextlib.suppress(OSError):
                        conn.sendall(zoolib.error_message("too-many-connections", "try again later"))
                continue
            threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
