# A correct asyncio streams client: every read bounded, a content limit, strict JSON.
# Usage: python correct_asyncio.py HOST PORT ACTION VALUE

import asyncio
import json
import struct
import sys

TIMEOUT = 2.0
MAX_CONTENT = 1 << 20


def strict_pairs(pairs):
    if len({key for key, _ in pairs}) != len(pairs):
        raise ValueError("duplicate key")
    return dict(pairs)


def strict(raw, encoding="utf-8"):
    def constant(name):
        raise ValueError(f"non-finite number {name}")

    return json.loads(raw.decode(encoding), object_pairs_hook=strict_pairs, parse_constant=constant)


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
        if hdrlen == 0:
            raise ValueError("empty header")
        header = strict(await asyncio.wait_for(reader.readexactly(hdrlen), TIMEOUT))
        if (
            not isinstance(header, dict)
            or not {"byteorder", "content-type", "content-encoding", "content-length"} <= header.keys()
        ):
            raise ValueError("header is not an object with the required keys")
        length = header["content-length"]
        if type(length) is not int or not 0 <= length <= MAX_CONTENT:
            raise ValueError(f"bad content-length {length!r}")
        if header["byteorder"] not in ("little", "big"):
            raise ValueError("bad byteorder")
        content = await asyncio.wait_for(reader.readexactly(length), TIMEOUT)
    finally:
        writer.close()
    if header["content-type"] == "text/json":
        if str(header["content-encoding"]).lower() not in {"utf-8", "utf-16", "utf-32", "ascii", "latin-1"}:
            raise ValueError("content-encoding not allowed")
        return strict(content, header["content-encoding"])
    return content


def main():
    host, port, action, value = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    try:
        body = asyncio.run(exchange(host, port, action, value))
    except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as exc:
        print(f"error: {exc!r}", file=sys.stderr)
        return 1
    print(f"Got result: {body.get('result')}" if isinstance(body, dict) else f"Got response: {body!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
