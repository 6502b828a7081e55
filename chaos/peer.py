"""The side-effect peer: every API_CALL node of the chaos workflow calls it, so it counts real
node executions, whatever the event log says happened.

`python -m chaos.peer PORT` serves:
- `POST /effect/{run_id}/{node_id}?ms=N`: records the call (run, node, arrival time), waits N ms
  (so runs last long enough for faults to land inside them), answers `{"node": node_id}`;
- `GET /calls`: every call recorded so far, `[[run_id, node_id, arrived_at], ...]`;
- `GET /readyz`.
"""

from __future__ import annotations

import asyncio
import sys
import time

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

Call = tuple[str, str, float]


def create_app() -> Starlette:
    calls: list[Call] = []

    async def effect(request: Request) -> JSONResponse:
        node_id = request.path_params["node_id"]
        calls.append((request.path_params["run_id"], node_id, time.time()))
        delay_ms = int(request.query_params.get("ms", "0"))
        if delay_ms > 0:
            await asyncio.sleep(delay_ms / 1000)
        return JSONResponse({"node": node_id})

    async def recorded(_: Request) -> JSONResponse:
        return JSONResponse(calls)

    async def ready(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(
        routes=[
            Route("/effect/{run_id}/{node_id}", effect, methods=["POST"]),
            Route("/calls", recorded),
            Route("/readyz", ready),
        ]
    )


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(create_app(), host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
