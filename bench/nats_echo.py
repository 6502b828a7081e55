"""`python -m bench.nats_echo <subject>`: answer every request with its own payload.

A process of its own, as a service is, so a round trip crosses two processes and the server.
It connects to `BENCH_NATS_URL` (credentials included: an environment variable, not an argument,
so they never show in the process list).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import nats

READY = "nats-echo ready"
URL_VARIABLE = "BENCH_NATS_URL"


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
    asyncio.run(_serve(os.environ[URL_VARIABLE], sys.argv[1]))


if __name__ == "__main__":
    main()
