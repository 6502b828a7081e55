"""Errors in the shape OpenAI clients read, on the two OpenAI-compatible routes.

The body is OpenAI's `{"error": {"message", "type", "param", "code"}}` and, beside it, the
`{"code", "message", "status"}` every other route answers, so both kinds of client understand it.
The route class converts every error of these routes, authentication included.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from flowstream_gateway.errors import ApiError, _describe_validation

_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    if status >= 500:
        return "server_error"
    return _TYPES.get(status, "invalid_request_error")


def openai_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {
        "error": {"message": message, "type": error_type(status), "param": None, "code": code},
        "code": code,
        "message": message,
        "status": status,
    }
    return JSONResponse(body, status_code=status, headers=headers)


class OpenAIRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as exc:
                return openai_error(exc.status, exc.code, exc.message, exc.headers)
            except RequestValidationError as exc:
                return openai_error(400, "invalid_param", _describe_validation(exc))

        return route
