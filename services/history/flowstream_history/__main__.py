from __future__ import annotations

import argparse
import json
import logging
import sys

import uvicorn

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
    logging.basicConfig(level=logging.INFO, format="%(asctime)s history %(levelname)s %(message)s")
    settings = HistorySettings()
    uvicorn.run(
        create_app(settings),
        host=settings.history_host,
        port=settings.history_port,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
