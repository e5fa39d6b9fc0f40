"""asyncio streams, decoding text/json content with codecs.decode and the peer's codec name.

Bug: the content is decoded with `codecs.decode(content, header["content-encoding"])`,
so the peer picks any codec Python has: base64, utf8, cp1252, unicode_escape, utf-7 ...
are all read instead of refused as unsupported-encoding. Breaks: C2.

Usage: python peer_codec_streams.py HOST PORT
"""

import asyncio
import codecs
import traceback

import zoolib

active = 0


class IdleTimeout(Exception):
    pass


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
        header, length = zoolib.parse_header(raw)
        content = await reader.readexactly(length)
    except asyncio.IncompleteReadError as exc:
        raise zoolib.ProtocolViolation(
            "incomplete-message", f"stream ended inside a message ({len(exc.partial)}/{exc.expected} bytes)"
        ) from None
    return header, content


def read_request(header, content):
    try:
        text = codecs.decode(content, header["content-encoding"])
    except LookupError:
        raise zoolib.ProtocolViolation("unsupported-encoding", header["content-encoding"]) from None
    except (ValueError, TypeError) as exc:
        raise zoolib.ProtocolViolation("content-not-decodable", str(exc)) from None
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return zoolib.loads_strict(text, zoolib.CONTENT_CODES)


def respond(header, content):
    try:
        if header["content-type"] != "text/json":
            return zoolib.binary_response(content)
        return zoolib.json_message({"result": zoolib.search_result(read_request(header, content))})
    except zoolib.ProtocolViolation as exc:
        return zoolib.error_message(exc.code, exc.detail)
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
