"""Cross-origin access for browser apps, for the whole API (`FLOWSTREAM_CORS_ORIGINS`).

Off unless origins are configured: a bearer token in a browser is the app's choice to make. With
origins set, preflights answer as Dify's service API does (its methods, and the headers its
clients send), plus the headers flowstream's own routes read. Tokens travel in the
`Authorization` header, never in cookies, so credentials mode stays off.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

ALLOWED_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "PATCH")
ALLOWED_HEADERS = (
    "Authorization",
    "Content-Type",
    "X-App-Code",  # Dify web clients send it
    "X-Trace-Id",
    "Last-Event-ID",
    "Idempotency-Key",
)
EXPOSED_HEADERS = ("Retry-After",)


def add_cors(app: FastAPI, origins: list[str]) -> None:
    """Add last, so it wraps every other middleware: their answers (a 413) get CORS headers too."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=ALLOWED_METHODS,
        allow_headers=ALLOWED_HEADERS,
        expose_headers=EXPOSED_HEADERS,
    )
