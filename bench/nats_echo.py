"""`python -m bench.nats_echo <nats-url> <subject>`: answer every request with its own payload.

A process of its own, as a service is, so a round trip crosses two processes and the server.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import nats

READY = "nats-echo ready"


async def _serve(url: str, subject: str) -> None:
    nc = await nats.connect(url)

    async def echo(msg: Any) -> None:
        await msg.respond(msg.data)

    await nc.subscribe(subject, cb=echo)
    await nc.flush()
    print(READY, flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await nc.close()


def main() -> None:
    asyncio.run(_serve(sys.argv[1], sys.argv[2]))


if __name__ == "__main__":
    main()
