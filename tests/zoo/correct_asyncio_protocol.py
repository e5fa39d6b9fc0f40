"""``asyncio.Protocol``: callbacks, a receive buffer, flow control by hand.

Correct. ``data_received`` appends to a buffer and answers every whole message;
the transport's write-buffer limits call ``pause_writing``, which pauses reading
until the peer catches up; ``eof_received`` answers what is complete and keeps
the transport open to send it (half-close). One ``call_later`` timer is the idle
timeout. After a framing or header error: the error message, ``write_eof()``,
and input is discarded until the peer closes (at most 2 s).

Usage: python correct_asyncio_protocol.py HOST PORT
"""

import asyncio
import struct
import traceback

import zoolib

active = 0


class LpjsonProtocol(asyncio.Protocol):
    def connection_made(self, transport):
        global active
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.eof = False
        self.paused = False
        self.done = False  # no more messages: an error was sent or the stream ended
        self.timer = None
        self.counted = False
        if active >= zoolib.MAX_CONNECTIONS:
            transport.write(zoolib.error_message("too-many-connections", "try again later"))
            transport.close()
            self.done = True
            return
        active += 1
        self.counted = True
        transport.set_write_buffer_limits(high=zoolib.MAX_PENDING_OUTPUT)
        self.reset_timer(zoolib.IDLE_TIMEOUT)

    def connection_lost(self, exc):
        global active
        if self.timer is not None:
            self.timer.cancel()
        if self.counted:
            active -= 1
            self.counted = False

    def reset_timer(self, delay):
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(delay, self.on_timer)

    def on_timer(self):
        if self.transport.is_closing():
            return
        if self.done:
            self.transport.close()  # lingered long enough
        elif self.transport.get_write_buffer_size():
            self.transport.abort()  # answers unsent: the peer does not read
        else:
            self.fail("idle-timeout", f"no complete request in {zoolib.IDLE_TIMEOUT:g} s")

    # -- input -------------------------------------------------------------------

    def data_received(self, data):
        if self.done:
            return  # lingering after an error: discard
        self.buffer += data
        self.process()

    def eof_received(self):
        self.eof = True
        if self.done:
            self.transport.close()  # the peer closed after our error message
        else:
            self.process()
        return True  # keep the transport open: the answers still have to go out

    def pause_writing(self):
        self.paused = True
        self.transport.pause_reading()

    def resume_writing(self):
        self.paused = False
        if not self.done:
            self.transport.resume_reading()
            self.process()

    # -- messages ----------------------------------------------------------------

    def process(self):
        buf = self.buffer
        while not self.paused and len(buf) >= 2:
            hdrlen = struct.unpack(">H", buf[:2])[0]
            try:
                if hdrlen == 0:
                    raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
                if len(buf) < 2 + hdrlen:
                    break
                header, length = zoolib.parse_header(buf[2 : 2 + hdrlen])
            except zoolib.ProtocolViolation as exc:
                self.fail(exc.code, exc.detail)
                return
            end = 2 + hdrlen + length
            if len(buf) < end:
                break
            content = bytes(buf[2 + hdrlen : end])
            del buf[:end]
            self.transport.write(self.respond(header, content))
            self.reset_timer(zoolib.IDLE_TIMEOUT)
        if self.eof and not self.paused:
            if buf:
                self.fail("incomplete-message", f"stream ended inside a message ({len(buf)} bytes)")
            else:
                self.done = True
                self.transport.close()  # after the answers are flushed

    def respond(self, header, content):
        try:
            return zoolib.answer(header, content)
        except Exception:
            traceback.print_exc()
            return zoolib.error_message("internal-error", "the application failed")

    def fail(self, code, detail):
        self.done = True
        self.buffer.clear()
        self.transport.write(zoolib.error_message(code, detail))
        if self.eof:
            self.transport.close()
            return
        self.transport.write_eof()
        if self.paused:
            self.paused = False
        self.transport.resume_reading()
        self.reset_timer(zoolib.LINGER)


async def main():
    host, port = zoolib.parse_args()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(LpjsonProtocol, host, port)
    zoolib.listening(server.sockets[0])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
