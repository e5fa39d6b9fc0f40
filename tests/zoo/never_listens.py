"""A thread-per-connection server that deadlocks before it listens.

Bug: startup holds a threading.Lock and calls log(), which takes the same (non-reentrant)
lock: the process hangs alive forever, never printing its Listening line and never
accepting a connection. Breaks: nothing on the wire; it is for the probe's bounded wait
for a server that never starts (it is not in ZOO, which holds servers that answer).

Usage: python never_listens.py HOST PORT
"""

import threading

import zoolib

lock = threading.Lock()


def log(message):
    with lock:
        print(message, flush=True)


def main():
    host, port = zoolib.parse_args()
    with lock:  # nobody may connect before the listener is ready
        log(f"Starting on {host}:{port}")
        lsock = zoolib.make_listener(host, port)
    with lsock:
        while True:
            conn, _ = lsock.accept()
            conn.close()


if __name__ == "__main__":
    main()
