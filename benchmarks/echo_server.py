#!/usr/bin/env python3
"""A bare asyncio echo server: no parsing at all, the requests come back as they are.

It is the ceiling for a Python server on this loopback: a load generator that counts
every well-formed lpjson message as an answer sees each echoed request as a perfect
answer. Prints ``Listening on HOST:PORT`` (like ``harness serve``) and runs until
SIGINT/SIGTERM.

    python benchmarks/echo_server.py [--host 127.0.0.1] [--port 0] [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import signal


class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.WriteTransport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port, backlog=4096)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sockname = server.sockets[0].getsockname()
    print(f"Listening on {sockname[0]}:{sockname[1]}", flush=True)
    await stop.wait()
    server.close()
    await server.wait_closed()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(serve(args.host, args.port))
    else:
        asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
