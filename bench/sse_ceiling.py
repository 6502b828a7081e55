"""The SSE ceiling: a bare FastAPI endpoint that streams a recorded run's frames.

`python -m bench.sse_ceiling <port> <frames-file>` serves `POST /api/workflow/{id}/execute` with
the same server settings as the gateway (uvicorn, one process). The body is validated by a small
pydantic model; the response writes the recorded frames one send each, as the gateway does (the
last event and `[DONE]` together). No auth, no NATS, no engine: what is left is HTTP, routing and
SSE writes, the part of a run no workflow engine behind this API can avoid.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def split_frames(body: bytes) -> list[bytes]:
    """One send per event; the final event and `data: [DONE]` go together."""
    frames = [part + b"\n\n" for part in body.split(b"\n\n") if part.strip()]
    if len(frames) >= 2 and frames[-1].startswith(b"data: [DONE]"):
        frames[-2:] = [frames[-2] + frames[-1]]
    return frames


class FramesResponse(Response):
    def __init__(self, frames: list[bytes]) -> None:
        super().__init__(media_type="text/event-stream")
        self._frames = frames

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
        last = len(self._frames) - 1
        for index, frame in enumerate(self._frames):
            await send({"type": "http.response.body", "body": frame, "more_body": index < last})


class ExecuteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)


def create_app(frames: list[bytes]) -> FastAPI:
    app = FastAPI()

    @app.post("/api/workflow/{workflow_id}/execute")
    async def execute(workflow_id: str, body: ExecuteRequest) -> Response:
        return FramesResponse(frames)

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    port, frames_file = int(sys.argv[1]), Path(sys.argv[2])
    app = create_app(split_frames(frames_file.read_bytes()))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
