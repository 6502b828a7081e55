from __future__ import annotations

import argparse
import json
import logging
import sys

import uvicorn

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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(message)s")
    settings = GatewaySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
