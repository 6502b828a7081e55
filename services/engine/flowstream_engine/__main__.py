from __future__ import annotations

import argparse
import json
import sys
from types import FrameType

import uvicorn
from flowstream_shared.settings import TelemetrySettings
from flowstream_shared.telemetry.logs import configure_logging
from flowstream_shared.telemetry.tracing import configure_tracing

from flowstream_engine.app import create_app
from flowstream_engine.control import ControlRegistry
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
    control = ControlRegistry()
    config = uvicorn.Config(
        create_app(settings, control),
        host=settings.engine_host,
        port=settings.engine_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the one JSON handler
        lifespan="on",
    )
    DrainingServer(config, control).run()


class DrainingServer(uvicorn.Server):
    """On SIGTERM or SIGINT the runs stop starting side effects at once: uvicorn reaches the
    broker's shutdown (which hands the runs back) only on its next tick, and a call started
    meanwhile would be made again by the engine that resumes the run."""

    def __init__(self, config: uvicorn.Config, control: ControlRegistry) -> None:
        super().__init__(config)
        self._control = control

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._control.drain()
        super().handle_exit(sig, frame)


if __name__ == "__main__":
    main()
