"""A thread per connection reading each piece with one recv(n).

Bug: `conn.recv(2)`, `conn.recv(hdrlen)` and `conn.recv(length)` are trusted to return
exactly the bytes asked for, but recv(n) returns at most n: a message split anywhere (or
a content larger than one read) is misread from that point on. Breaks: F2.

Everything else (strict header checks, limits, error messages, pipelining of whole
messages) is done as the spec says.

Usage: python recv_exact_threads.py HOST PORT
"""

import contextlib
import socket
import threading
import time
import traceback

import zoolib


def respond(header, content):
    try:
        return zoolib.answer(header, content)
    except Exception:
        traceback.print_exc()
        return zoolib.error_message("internal-error", "the application failed")


def send_error_and_close(conn, code, detail):
    with contextlib.suppress(OSError):
        conn.settimeout(zoolib.LINGER)
        conn.sendall(zoolib.error_message(code, detail))
        conn.shutdown(socket.SHUT_WR)
        end = time.monotonic() + zoolib.LINGER
        while time.monotonic() < end:
            conn.settimeout(max(0.01, end - time.monotonic()))
            if not conn.recv(zoolib.RECV_SIZE):
                break


def serve_connection(conn):
    while True:
        conn.settimeout(zoolib.IDLE_TIMEOUT)
        try:
            prefix = conn.recv(2)
            if not prefix:
                return  # the client closed
            hdrlen = int.from_bytes(prefix, "big")
            if hdrlen == 0:
                raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
            header, length = zoolib.parse_header(conn.recv(hdrlen))
            content = conn.recv(length) if length else b""
        except TimeoutError:
            send_error_and_close(conn, "idle-timeout", f"no request in {zoolib.IDLE_TIMEOUT:g} s")
            return
        except zoolib.ProtocolViolation as exc:
            send_error_and_close(conn, exc.code, exc.detail)
            return
        conn.sendall(respond(header, content))


def handle(conn, addr):
    try:
        serve_connection(conn)
    except OSError as exc:
        print(f"{addr}: {exc}")
    finally:
        conn.close()


def main():
    host, port = zoolib.parse_args()
    lsock = zoolib.make_listener(host, port)
    with lsock:
        while True:
            conn, addr = lsock.accept()
            if threading.active_count() > zoolib.MAX_CONNECTIONS:
                with conn, contextlib.suppress(OSError):
                    conn.sendall(zoolib.error_message("too-many-connections", "try again later"))
                continue
            threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
