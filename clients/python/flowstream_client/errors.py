"""One exception for every failure, carrying the API's error body (`{code, message, status}`)."""

from __future__ import annotations

import json

import httpx


class FlowstreamError(Exception):
    def __init__(self, code: str, message: str, status: int) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def retryable(self) -> bool:
        """A lost connection, a 5xx or a 429: trying again later may succeed."""
        return self.status == 0 or self.status == 429 or self.status >= 500

    def __str__(self) -> str:
        return (
            f"{self.message} ({self.code})"
            if self.status == 0
            else (f"{self.status} {self.code}: {self.message}")
        )


def error_from_response(response: httpx.Response) -> FlowstreamError:
    """The API's error, read from a non-2xx answer whose body has been read."""
    try:
        body = json.loads(response.text)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return FlowstreamError(body["code"], str(body.get("message", "")), response.status_code)
    text = response.text.strip() or response.reason_phrase
    return FlowstreamError(f"http_{response.status_code}", text, response.status_code)


def connection_error(exc: Exception) -> FlowstreamError:
    return FlowstreamError("connection_error", f"connection failed: {exc}", 0)
