# multiconn-server.py
#
# The multi-connection server of Real Python's "Socket Programming in Python (Guide)"
# (2022 edition, "Multi-Connection Server"), as published, assembled from its pieces: the
# listening socket, accept_wrapper(), service_connection() and the event loop, with the
# usage line the guide shows when it is run without arguments. It already takes HOST PORT
# on the command line, so nothing is changed. (The 2018 edition is the same logic with
# print('echoing', repr(data.outb), 'to', data.addr) and no KeyboardInterrupt handler.)
#
# Known from reading it, and shown by `harness probe --protocol echo`
# (tests/test_probe_echo.py): every connection is registered for EVENT_WRITE even with
# nothing to send (select() never sleeps while a client is connected), a recv() that
# raises (a client's reset) ends the whole server, and data.outb grows as long as a client
# sends without reading (bytes += bytes, copied on every recv()).

import selectors
import socket
import sys
import types

sel = selectors.DefaultSelector()


def accept_wrapper(sock):
    conn, addr = sock.accept()  # Should be ready to read
    print(f"Accepted connection from {addr}")
    conn.setblocking(False)
    data = types.SimpleNamespace(addr=addr, inb=b"", outb=b"")
    events = selectors.EVENT_READ | selectors.EVENT_WRITE
    sel.register(conn, events, data=data)


def service_connection(key, mask):
    sock = key.fileobj
    data = key.data
    if mask & selectors.EVENT_READ:
        recv_data = sock.recv(1024)  # Should be ready to read
        if recv_data:
            data.outb += recv_data
        else:
            print(f"Closing connection to {data.addr}")
            sel.unregister(sock)
            sock.close()
    if mask & selectors.EVENT_WRITE:  # noqa: SIM102 (the guide's code, kept as published)
        if data.outb:
            print(f"Echoing {data.outb!r} to {data.addr}")
            sent = sock.send(data.outb)  # Should be ready to write
            data.outb = data.outb[sent:]


if len(sys.argv) != 3:
    print(f"Usage: {sys.argv[0]} <host> <port>")
    sys.exit(1)

host, port = sys.argv[1], int(sys.argv[2])
lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
lsock.bind((host, port))
lsock.listen()
print(f"Listening on {(host, port)}")
lsock.setblocking(False)
sel.register(lsock, selectors.EVENT_READ, data=None)

try:
    while True:
        events = sel.select(timeout=None)
        for key, mask in events:
            if key.data is None:
                accept_wrapper(key.fileobj)
            else:
                service_connection(key, mask)
except KeyboardInterrupt:
    print("Caught keyboard interrupt, exiting")
finally:
    sel.close()
