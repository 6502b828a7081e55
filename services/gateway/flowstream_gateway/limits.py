"""Rejects request bodies over the configured size before they are read into memory.

The body is read here, up to the limit, before the application sees it: a `Content-Length` over
the limit is refused at once, and a chunked body as soon as it passes the limit. Either way the
answer is `413 payload_too_large` naming the limit. (Raising from inside the application's
`receive` is not enough: FastAPI turns any error while reading a body into a 400.) Once the body
has been handed over, `receive` goes to the server again, so a client disconnect still reaches a
streaming response.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic_core import to_json
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowstream_gateway.errors import ApiError, error_body


def check_input_size(inputs: dict[str, Any], max_bytes: int) -> None:
    """A run's inputs travel in its command and its first events: past the limit, a 400."""
    size = len(to_json(inputs))
    if size > max_bytes:
        raise ApiError(
            400,
            "invalid_param",
            f"inputs are {size:,} bytes as JSON; the limit is {max_bytes:,} "
            "(FLOWSTREAM_MAX_INPUT_BYTES)",
        )


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._reject(send)
                return
        body: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # The client left before sending its body: let the application see that.
                await self.app(scope, _replay([message], receive), send)
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_bytes:
                await self._reject(send)
                return
            body.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(body), "more_body": False}
        await self.app(scope, _replay([whole], receive), send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps(
            error_body(
                413,
                "payload_too_large",
                f"request body exceeds {self.max_bytes:,} bytes (FLOWSTREAM_MAX_BODY_BYTES)",
            )
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
