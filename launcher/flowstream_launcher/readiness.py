"""Waiting for services to answer `/readyz`.

A service's readiness is only observable over HTTP, so this is the one place that polls
(every 100 ms).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import httpx

PROBE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 2.0


class NotReadyError(RuntimeError):
    def __init__(self, names: list[str], timeout_s: float) -> None:
        self.names = names
        super().__init__(f"not ready after {timeout_s:g} s: {', '.join(names)}")


async def wait_until_ready(client: httpx.AsyncClient, url: str) -> None:
    while True:
        try:
            response = await client.get(url, timeout=PROBE_TIMEOUT_S)
            if response.is_success:
                return
        except httpx.TransportError:
            pass  # not listening yet
        await asyncio.sleep(PROBE_INTERVAL_S)


async def wait_all_ready(urls: Mapping[str, str], timeout_s: float) -> None:
    """Return once every named URL answers 2xx; raise NotReadyError naming the laggards."""
    # trust_env=False: a proxy from the environment must not sit between us and 127.0.0.1.
    async with httpx.AsyncClient(trust_env=False) as client:
        probes = {
            name: asyncio.create_task(wait_until_ready(client, url)) for name, url in urls.items()
        }
        try:
            _, pending = await asyncio.wait(probes.values(), timeout=timeout_s)
        finally:
            for probe in probes.values():
                probe.cancel()
            await asyncio.gather(*probes.values(), return_exceptions=True)
        if pending:
            raise NotReadyError(
                [name for name, probe in probes.items() if probe in pending], timeout_s
            )
