from __future__ import annotations

import argparse
import json
import socket
import sys

import uvicorn
from fastapi import FastAPI
from flowstream_shared.settings import TelemetrySettings
from flowstream_shared.telemetry.logs import configure_logging
from flowstream_shared.telemetry.tracing import configure_tracing

from flowstream_gateway.app import create_app
from flowstream_gateway.settings import GatewaySettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flowstream_gateway")
    parser.add_argument(
        "--openapi", action="store_true", help="print the OpenAPI document and exit"
    )
    args = parser.parse_args()
    if args.openapi:
        json.dump(create_app().openapi(), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return
    configure_logging("gateway", TelemetrySettings().log_level)
    configure_tracing("gateway")
    settings = GatewaySettings()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the one JSON handler
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    DrainingServer(config, app).run()


class DrainingServer(uvicorn.Server):
    """Before uvicorn waits for open connections to finish, every stream of this replica is
    told to end with a frame that sends its client to another replica: a rolling update never
    cancels runs and never waits out a stream that could last minutes."""

    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        services = getattr(self._app.state, "services", None)
        if services is not None:
            services.hub.shutting_down()
        await super().shutdown(sockets)


if __name__ == "__main__":
    main()
