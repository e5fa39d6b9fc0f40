# An asyncio streams client. Bug: decodes binary content as UTF-8 to print it: a binary
# answer that is not UTF-8 crashes it (caught by binary, with a binary request).
# Usage: python utf8_binary_asyncio.py HOST PORT ACTION VALUE

import asyncio
import json
import struct
import sys

TIMEOUT = 2.0


def encode(action, value):
    if action == "search":
        content = json.dumps({"action": action, "value": value}, ensure_ascii=False).encode()
        ctype, cenc = "text/json", "utf-8"
    else:
        content = (action + value).encode()
        ctype, cenc = "binary/custom-client-binary-type", "binary"
    header = {
        "byteorder": sys.byteorder,
        "content-type": ctype,
        "content-encoding": cenc,
        "content-length": len(content),
    }
    raw = json.dumps(header, ensure_ascii=False).encode()
    return struct.pack(">H", len(raw)) + raw + content


async def exchange(host, port, action, value):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), TIMEOUT)
    try:
        writer.write(encode(action, value))
        await writer.drain()
        (hdrlen,) = struct.unpack(">H", await asyncio.wait_for(reader.readexactly(2), TIMEOUT))
        header = json.loads((await asyncio.wait_for(reader.readexactly(hdrlen), TIMEOUT)).decode())
        content = await asyncio.wait_for(reader.readexactly(header["content-length"]), TIMEOUT)
    finally:
        writer.close()
    if header["content-type"] == "text/json":
        return json.loads(content.decode(header["content-encoding"]))
    return content.decode("utf-8")  # the bug: binary content is not text


def main():
    host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        body = asyncio.run(exchange(host, port, action, value))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError, KeyError) as exc:
        print(f"error: {exc!r}", file=sys.stderr)
        return 1
    print(f"Got result: {body.get('result')}" if isinstance(body, dict) else f"Got response: {body!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
