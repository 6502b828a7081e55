from __future__ import annotations

import logging

import uvicorn

from flowstream_engine.app import create_app
from flowstream_engine.settings import EngineSettings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s engine %(levelname)s %(message)s")
    settings = EngineSettings()
    uvicorn.run(
        create_app(settings),
        host="127.0.0.1",
        port=settings.engine_port,
        log_level="warning",
        lifespan="on",
    )


if __name__ == "__main__":
    main()
