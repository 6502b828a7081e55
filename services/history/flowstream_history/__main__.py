from __future__ import annotations

import argparse
import json
import sys

import uvicorn
from flowstream_shared.settings import TelemetrySettings
from flowstream_shared.telemetry.logs import configure_logging
from flowstream_shared.telemetry.tracing import configure_tracing

from flowstream_history.app import create_app
from flowstream_history.settings import HistorySettings


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m flowstream_history")
    parser.add_argument("--asyncapi", action="store_true", help="print the AsyncAPI document")
    if parser.parse_args().asyncapi:
        document = create_app().schema.to_specification().to_jsonable()
        json.dump(document, sys.stdout, indent=2, sort_keys=True)  # stable across runs
        sys.stdout.write("\n")
        return
    configure_logging("history", TelemetrySettings().log_level)
    configure_tracing("history")
    settings = HistorySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.history_host,
        port=settings.history_port,
        log_level="warning",
        log_config=None,  # uvicorn's records go to the one JSON handler
        lifespan="on",
    )


if __name__ == "__main__":
    main()
