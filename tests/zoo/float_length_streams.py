"""asyncio streams with a header check that converts content-length with int().

Bug: content-length is read with int(), so 41.0, "41" and true are accepted instead of
refused as invalid-header-value (and 41.9 reads 41 bytes). Breaks: H7.

Usage: python float_length_streams.py HOST PORT
"""

import asyncio
import traceback

import zoolib

active = 0


class IdleTimeout(Exception):
    pass


def check_header(header):
    if not isinstance(header, dict):
        raise zoolib.ProtocolViolation("header-not-object", f"JSON header is a {type(header).__name__}")
    missing = [key for key in zoolib.REQUIRED_KEYS if key not in header]
    if missing:
        raise zoolib.ProtocolViolation("missing-header-key", "missing " + ", ".join(missing))
    if type(header["byteorder"]) is not str or header["byteorder"] not in ("little", "big"):
        raise zoolib.ProtocolViolation("invalid-header-value", "bad byteorder")
    for key in ("content-type", "content-encoding"):
        if type(header[key]) is not str or not header[key]:
            raise zoolib.ProtocolViolation("invalid-header-value", f"bad {key}")
    try:
        length = int(header["content-length"])
    except (TypeError, ValueError):
        raise zoolib.ProtocolViolation("invalid-header-value", "bad content-length") from None
    if length < 0:
        raise zoolib.ProtocolViolation("invalid-header-value", "negative content-length")
    if length > zoolib.MAX_CONTENT_LENGTH:
        raise zoolib.ProtocolViolation("content-too-large", f"content-length {length}")
    return length


async def read_message(reader):
    """One (header, content), or None at a clean end of stream."""
    try:
        prefix = await reader.readexactly(2)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise zoolib.ProtocolViolation("incomplete-message", "stream ended inside the prefix") from None
    hdrlen = int.from_bytes(prefix, "big")
    if hdrlen == 0:
        raise zoolib.ProtocolViolation("zero-header-length", "header length 0")
    try:
        raw = await reader.readexactly(hdrlen)
        header = zoolib.loads_strict(zoolib.decode_header_text(raw), zoolib.HEADER_CODES)
        length = check_header(header)
        content = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise zoolib.ProtocolViolation(
            "incomplete-message", f"stream ended inside a message ({len(exc.partial)}/{exc.expected} bytes)"
        ) from None
    return header, content


def respond(header, content):
    try:
        return zoolib.answer(header, content)
    except Exception:
        traceback.print_exc()
        return zoolib.error_message("internal-error", "the application failed")


async def send_error_and_close(reader, writer, code, detail):
    writer.write(zoolib.error_message(code, detail))
    try:
        async with asyncio.timeout(zoolib.LINGER):
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
            while await reader.read(zoolib.RECV_SIZE):
                pass
    except (TimeoutError, OSError):
        pass


async def serve(reader, writer):
    while True:
        try:
            async with asyncio.timeout(zoolib.IDLE_TIMEOUT):
                message = await read_message(reader)
        except TimeoutError:
            if writer.transport.get_write_buffer_size():
                raise IdleTimeout from None  # answers unsent: the peer does not read
            await send_error_and_close(
                reader, writer, "idle-timeout", f"no complete request in {zoolib.IDLE_TIMEOUT:g} s"
            )
            return
        except zoolib.ProtocolViolation as exc:
            await send_error_and_close(reader, writer, exc.code, exc.detail)
            return
        if message is None:
            return
        writer.write(respond(*message))
        try:
            async with asyncio.timeout(zoolib.IDLE_TIMEOUT):
                await writer.drain()
        except TimeoutError:
            raise IdleTimeout from None


async def handle(reader, writer):
    global active
    if active >= zoolib.MAX_CONNECTIONS:
        writer.write(zoolib.error_message("too-many-connections", "try again later"))
        writer.close()
        return
    active += 1
    try:
        await serve(reader, writer)
        writer.close()
    except IdleTimeout:
        writer.transport.abort()
    except OSError:
        writer.transport.abort()
    finally:
        active -= 1


async def main():
    host, port = zoolib.parse_args()
    server = await asyncio.start_server(handle, host, port)
    zoolib.listening(server.sockets[0])
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("Caught keyboard interrupt, exiting")
