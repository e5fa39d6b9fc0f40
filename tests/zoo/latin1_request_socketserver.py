"""socketserver.ThreadingTCPServer whose handler decodes every text/json request as latin-1.

Bug: text/json content is decoded as latin-1 ("it never fails") whatever its
content-encoding says, so non-ASCII text is misread: the query 🐶 gets "No match for
'ð\x9f\x90¶'." instead of its answer. Breaks: A1.

Usage: python latin1_request_socketserver.py HOST PORT
"""

import contextlib
import socket
import socketserver
import struct
import threading
import time
import traceback

import zoolib


class LpjsonHandler(socketserver.BaseRequestHandler):
    def handle(self):
        self.buffer = bytearray()
        self.deadline = time.monotonic() + zoolib.IDLE_TIMEOUT
        try:
            self.serve()
        except TimeoutError:
            # Answers unsent for the idle timeout: the peer does not read. Abort (RST).
            self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except ConnectionError:
            pass

    def serve(self):
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                self.send_error("idle-timeout", f"no complete request in {zoolib.IDLE_TIMEOUT:g} s")
                return
            self.request.settimeout(left)
            try:
                data = self.request.recv(zoolib.RECV_SIZE)
            except TimeoutError:
                continue
            if not data:
                break
            self.buffer += data
            try:
                self.answer_messages()
            except zoolib.ProtocolViolation as exc:
                self.send_error(exc.code, exc.detail)
                return
        if self.buffer:
            self.send_error("incomplete-message", f"stream ended inside a message ({len(self.buffer)} bytes)")

    def answer_messages(self):
        buf = self.buffer
        out = bytearray()
        try:
            while len(buf) >= 2:
                hdrlen = struct.unpack(">H", buf[:2])[0]
                if hdrlen == 0:
                    raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
                if len(buf) < 2 + hdrlen:
                    break
                header, length = zoolib.parse_header(buf[2 : 2 + hdrlen])
                end = 2 + hdrlen + length
                if len(buf) < end:
                    break
                content = bytes(buf[2 + hdrlen : end])
                del buf[:end]
                out += self.respond(header, content)
        finally:
            if out:
                self.request.settimeout(zoolib.IDLE_TIMEOUT)
                self.request.sendall(out)
                self.deadline = time.monotonic() + zoolib.IDLE_TIMEOUT

    def respond(self, header, content):
        try:
            if header["content-type"] != "text/json":
                return zoolib.binary_response(content)
            encoding = header["content-encoding"]
            if encoding.lower() not in zoolib.TEXT_ENCODINGS:
                return zoolib.error_message("unsupported-encoding", f"content-encoding {encoding!r:.60}")
            try:
                request = zoolib.loads_strict(content.decode("latin-1"), zoolib.CONTENT_CODES)
            except zoolib.ProtocolViolation as exc:
                return zoolib.error_message(exc.code, exc.detail)
            return zoolib.json_message({"result": zoolib.search_result(request)})
        except Exception:
            traceback.print_exc()
            return zoolib.error_message("internal-error", "the application failed")

    def send_error(self, code, detail):
        """The error message, our FIN, then discard input until the peer closes (bounded)."""
        sock = self.request
        with contextlib.suppress(OSError):
            sock.settimeout(zoolib.LINGER)
            sock.sendall(zoolib.error_message(code, detail))
            sock.shutdown(socket.SHUT_WR)
            end = time.monotonic() + zoolib.LINGER
            while time.monotonic() < end:
                sock.settimeout(max(0.01, end - time.monotonic()))
                if not sock.recv(zoolib.RECV_SIZE):
                    break


class LpjsonServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(zoolib.MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.settimeout(1.0)
                request.sendall(zoolib.error_message("too-many-connections", "try again later"))
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def main():
    host, port = zoolib.parse_args()
    with LpjsonServer((host, port), LpjsonHandler) as server:
        zoolib.listening(server.socket)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("Caught keyboard interrupt, exiting")


if __name__ == "__main__":
    main()
