from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from flowstream_shared.settings import TelemetrySettings
from flowstream_shared.telemetry.logs import configure_logging
from flowstream_shared.telemetry.tracing import configure_tracing

from flowstream_engine.app import create_app
from flowstream_engine.redaction import LIVE_SECRETS, install_log_redaction
from flowstream_engine.settings import EngineSettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flowstream_engine")
    parser.add_argument("--asyncapi", action="store_true", help="print the AsyncAPI document")
    if parser.parse_args().asyncapi:
        document = create_app().schema.to_specification().to_jsonable()
        json.dump(document, sys.stdout, indent=2, sort_keys=True)  # stable across runs
        sys.stdout.write("\n")
        return
    configure_logging("engine", TelemetrySettings().log_level)
    install_log_redaction()  # no secret a run holds reaches a line
    configure_tracing("engine", redact=LIVE_SECRETS.redact)  # nor a span's URL
    settings = EngineSettings()
    if settings.credentials_private_key is None:
        sys.exit(
            "flowstream engine: FLOWSTREAM_CREDENTIALS_PRIVATE_KEY is required "
            "(`python -m flowstream_launcher credentials-key` makes a key pair)"
        )
    uvicorn.run(
        create_app(settings),
        host=settings.engine_host,
        port=settings.engine_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the one JSON handler
        lifespan="on",
    )


if __name__ == "__main__":
    main()
