"""The set of service processes the launcher runs: started together, watched, stopped together."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from flowstream_launcher.service_process import ServiceProcess, ServiceSpec

STOP_GRACE_S = 10.0


class Supervisor:
    def __init__(self, hurry: asyncio.Event) -> None:
        self._services: list[ServiceProcess] = []
        self._hurry = hurry  # once set, stopping kills instead of waiting out the grace period

    @property
    def services(self) -> list[ServiceProcess]:
        return list(self._services)

    async def start(self, spec: ServiceSpec, env: Mapping[str, str]) -> ServiceProcess:
        service = await ServiceProcess.start(spec, env)
        self._services.append(service)
        return service

    async def first_exit(self) -> tuple[str, int]:
        """Wait for the first service to exit, whatever the reason: the name and exit status."""
        by_task = {service.exited: service.spec.name for service in self._services}
        done, _ = await asyncio.wait(by_task, return_when=asyncio.FIRST_COMPLETED)
        finished = next(iter(done))
        return by_task[finished], finished.result()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        # All at once: none of the services needs another to shut down, only NATS, stopped after.
        await asyncio.gather(*(service.stop(grace_s, self._hurry) for service in self._services))
