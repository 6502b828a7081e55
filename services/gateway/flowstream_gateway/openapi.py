"""The OpenAPI document tells the errors each operation really answers, in the one error shape,
and the bearer scheme every authenticated operation needs (the Authorize button of /docs).

Request validation answers 400 (never 422, errors.py), so 422 is taken out. Which errors an
operation can answer follows from what it takes: a body can be invalid (400) or too large
(413); a path names something that may not exist (404); an authenticated operation can be
refused a token (401), refused an app key where it needs a user token (403), and find NATS or
history unavailable (503); an `Idempotency-Key` reused for another request is a conflict
(409). Routes declare any other error (`responses={409: ...}`) and get the same body schema.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.routing import BaseRoute

ERROR_REF = "#/components/schemas/ErrorBody"
DESCRIPTIONS = {
    400: "Invalid input: the message names the field or the limit",
    401: "Missing, invalid or expired bearer token",
    403: "An app API key where a user token is needed",
    404: "Not found, or not the caller's",
    409: "Conflicts with the current state",
    413: "Request body over the configured limit (FLOWSTREAM_MAX_BODY_BYTES)",
    429: "Too many requests",
    503: "NATS or the history service is unavailable; retry (Retry-After)",
}


class ErrorBody(BaseModel):
    """Every error: `{"code", "message", "status"}`."""

    code: str = Field(examples=["invalid_param"])
    message: str = Field(examples=["inputs.name: Field required"])
    status: int = Field(examples=[400])


def _needs_user_token(route: APIRoute) -> bool:
    try:
        return "require_user_token()" in inspect.getsource(route.endpoint)
    except (OSError, TypeError):
        return False


def _errors_of(operation: dict[str, Any], route: APIRoute | None) -> set[int]:
    parameters = operation.get("parameters", [])
    codes: set[int] = set()
    if parameters or "requestBody" in operation:
        codes.add(400)
    if "requestBody" in operation:
        codes.add(413)
    if any(p.get("in") == "path" for p in parameters):
        codes.add(404)
    if any(p.get("name") == "Idempotency-Key" for p in parameters):
        codes.add(409)
    if operation.get("security"):
        codes |= {401, 503}
        if route is not None and _needs_user_token(route):
            codes.add(403)
    codes |= {int(code) for code in operation.get("responses", {}) if code[0] in "45"}
    return codes


def describe_errors(schema: dict[str, Any], routes: dict[tuple[str, str], APIRoute]) -> None:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["ErrorBody"] = ErrorBody.model_json_schema()
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code in sorted(_errors_of(operation, routes.get((path, method.upper())))):
                declared = responses.get(str(code), {})
                responses[str(code)] = {
                    "description": declared.get("description") or DESCRIPTIONS.get(code, "Error"),
                    "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
                }
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """Every operation's route, through included routers (each router carries its prefix)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI's included router
        if included is not None:
            yield from _api_routes(included.routes)


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            routes = {
                (route.path, method): route
                for route in _api_routes(app.routes)
                for method in route.methods or ()
            }
            describe_errors(schema, routes)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = build  # type: ignore[method-assign]
