#!/usr/bin/env python3
"""The WebSocket backend of the gateway tests: echoes every message back, prefixed with
the path the client asked for (so a test sees the request went through the route it
meant), using the `websockets` package.

  ws_echo_server.py --listen 127.0.0.1:0     prints `listening on HOST:PORT`; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys


async def serve(host: str, port: int) -> None:
    from websockets.asyncio.server import serve as ws_serve

    async def echo(ws) -> None:
        path = ws.request.path
        async for message in ws:
            if isinstance(message, bytes):  # binary frames stay binary
                await ws.send(path.encode() + b" " + message)
            else:
                await ws.send(f"{path} {message}")

    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set_result, None)
    async with ws_serve(echo, host, port) as server:
        bound = server.sockets[0].getsockname()
        print(f"listening on {bound[0]}:{bound[1]}", flush=True)
        await stop


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    a = p.parse_args(argv)
    host, _, port = a.listen.rpartition(":")
    asyncio.run(serve(host, int(port)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
