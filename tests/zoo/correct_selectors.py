"""The guide's selectors loop and Message class, grown up to the whole spec.

Correct. One ``Message`` object per connection, as in the guide's ``libserver.py``,
but it keeps its receive buffer across messages and answers every request on the
connection (pipelined ones included), checks every header rule, refuses a large
content-length at once, stops reading while 256 KiB of answers are unsent, cuts
off an idle peer, answers after a half-close, and sends the error message of
docs/PROTOCOL.md before closing on a framing or header error.

Usage: python correct_selectors.py HOST PORT
"""

import contextlib
import selectors
import socket
import struct
import time
import traceback

import zoolib

sel = selectors.DefaultSelector()
connections = {}


class Message:
    def __init__(self, selector, sock, addr):
        self.selector = selector
        self.sock = sock
        self.addr = addr
        self._recv_buffer = bytearray()
        self._send_buffer = bytearray()
        self._jsonheader_len = None
        self.jsonheader = None
        self._content_len = None
        self._eof = False
        self._closing = False  # nothing more is read as messages; close once the output is sent
        self._failed = False  # an error message was sent: shut down our side, then linger
        self._lingering = False
        self.deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
        self._mask = selectors.EVENT_READ
        self.selector.register(sock, self._mask, data=self)

    # -- events -------------------------------------------------------------

    def process_events(self, mask):
        if mask & selectors.EVENT_READ:
            self.read()
        if mask & selectors.EVENT_WRITE and self.sock is not None:
            self.write()
        if self.sock is not None:
            self._update_mask()

    def _update_mask(self):
        if self._lingering:
            mask = selectors.EVENT_READ
        else:
            mask = 0
            if not self._closing and not self._eof and len(self._send_buffer) < zoolib.MAX_PENDING_OUTPUT:
                mask |= selectors.EVENT_READ
            if self._send_buffer:
                mask |= selectors.EVENT_WRITE
        if mask and mask != self._mask:
            self.selector.modify(self.sock, mask, data=self)
            self._mask = mask

    def read(self):
        try:
            data = self.sock.recv(zoolib.RECV_SIZE)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if self._lingering:
            if not data:
                self.close()
            return
        if data:
            self._recv_buffer += data
        else:
            self._eof = True
        self.process()

    def write(self):
        if self._send_buffer:
            try:
                sent = self.sock.send(self._send_buffer)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            if sent:
                del self._send_buffer[:sent]
                self.deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
        if not self._send_buffer:
            if self._closing:
                self._finish()
            else:
                self.process()  # answers held back while the output was full

    # -- messages -----------------------------------------------------------

    def process(self):
        """Answer every whole request in the buffer, while the output is not backed up."""
        while not self._closing and len(self._send_buffer) < zoolib.MAX_PENDING_OUTPUT:
            try:
                if not self.process_message():
                    break
            except zoolib.ProtocolViolation as exc:
                self.fail(exc.code, exc.detail)
                return
        else:
            return
        if self._eof and not self._closing:
            if self._recv_buffer:
                detail = f"stream ended inside a message ({len(self._recv_buffer)} bytes)"
                self.fail("incomplete-message", detail)
            else:
                self._closing = True
                if not self._send_buffer:
                    self._finish()

    def process_message(self):
        buf = self._recv_buffer
        if self._jsonheader_len is None:
            if len(buf) < 2:
                return False
            self._jsonheader_len = struct.unpack(">H", buf[:2])[0]
            if self._jsonheader_len == 0:
                raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
        start = 2 + self._jsonheader_len
        if self.jsonheader is None:
            if len(buf) < start:
                return False
            self.jsonheader, self._content_len = zoolib.parse_header(buf[2:start])
        end = start + self._content_len
        if len(buf) < end:
            return False
        content = bytes(buf[start:end])
        header = self.jsonheader
        del buf[:end]
        self._jsonheader_len = self.jsonheader = self._content_len = None
        self._send_buffer += self.create_response(header, content)
        self.deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
        return True

    def create_response(self, header, content):
        try:
            return zoolib.answer(header, content)
        except Exception:
            traceback.print_exc()
            return zoolib.error_message("internal-error", "the application failed")

    def fail(self, code, detail):
        self._send_buffer += zoolib.error_message(code, detail)
        self._closing = self._failed = True

    def check_idle(self, now):
        if now < self.deadline:
            return
        if self._lingering:
            self.close()
        elif self._send_buffer:
            self.abort()  # the peer does not read its answers
        elif not self._closing:
            self.fail("idle-timeout", f"no complete request in {zoolib.IDLE_TIMEOUT:g} s")
            self._update_mask()

    # -- the end ------------------------------------------------------------

    def _finish(self):
        if not self._failed or self._eof:
            self.close()
            return
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self._lingering = True
        self.deadline = time.monotonic() + zoolib.LINGER

    def abort(self):
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self):
        if self.sock is None:
            return
        self.selector.unregister(self.sock)
        connections.pop(self.sock, None)
        self.sock.close()
        self.sock = None


def accept_wrapper(sock):
    try:
        conn, addr = sock.accept()
    except BlockingIOError:
        return
    conn.setblocking(False)
    if len(connections) >= zoolib.MAX_CONNECTIONS:
        with contextlib.suppress(OSError):
            conn.send(zoolib.error_message("too-many-connections", "try again later"))
        conn.close()
        return
    connections[conn] = Message(sel, conn, addr)


def main():
    host, port = zoolib.parse_args()
    lsock = zoolib.make_listener(host, port, blocking=False)
    sel.register(lsock, selectors.EVENT_READ, data=None)
    try:
        while True:
            events = sel.select(timeout=0.2)
            for key, mask in events:
                if key.data is None:
                    accept_wrapper(key.fileobj)
                else:
                    message = key.data
                    try:
                        message.process_events(mask)
                    except Exception:
                        print(f"Main: Error: Exception for {message.addr}:\n{traceback.format_exc()}")
                        message.close()
            now = time.monotonic()
            for message in list(connections.values()):
                message.check_idle(now)
    except KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
    finally:
        sel.close()


if __name__ == "__main__":
    main()
