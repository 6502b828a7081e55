from __future__ import annotations

import logging

import uvicorn

from flowstream_history.app import create_app
from flowstream_history.settings import HistorySettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s history %(levelname)s %(message)s")
    settings = HistorySettings()
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=settings.history_port,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
